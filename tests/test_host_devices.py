"""The CLI gives JAX 2 CPU devices unless told otherwise (cirkit/host_devices.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cirkit.host_devices import FLAG, configure_host_devices


def test_adds_the_flag_to_other_xla_flags_and_keeps_a_users_own_count():
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    assert configure_host_devices(env) == 2
    assert env["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {FLAG}=2"
    assert configure_host_devices(env) is None and env["XLA_FLAGS"].count(FLAG) == 1  # idempotent
    mine = {"XLA_FLAGS": f"{FLAG}=4", "CIRKIT_HOST_DEVICES": "3"}
    assert configure_host_devices(mine) is None and mine["XLA_FLAGS"] == f"{FLAG}=4"
    three = {"CIRKIT_HOST_DEVICES": "3"}
    assert configure_host_devices(three) == 3 and three["XLA_FLAGS"] == f"{FLAG}=3"


def test_one_device_or_a_late_call_changes_nothing(monkeypatch):
    off = {"CIRKIT_HOST_DEVICES": "1"}
    assert configure_host_devices(off) is None and "XLA_FLAGS" not in off
    import jax  # noqa: F401 - this process's JAX has started: the flag would no longer count

    monkeypatch.setenv("CIRKIT_HOST_DEVICES", "2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert configure_host_devices() is None and "XLA_FLAGS" not in os.environ


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_count_is_an_error_naming_the_variable(value):
    with pytest.raises(ValueError, match=f"CIRKIT_HOST_DEVICES.*{value!r}"):
        configure_host_devices({"CIRKIT_HOST_DEVICES": value})


def test_the_command_line_starts_jax_with_two_cpu_devices(tmp_path):
    script = ("from cirkit.cli import main\n"
              f"try:\n    main(['ls', '--store', {str(tmp_path / 'store')!r}])\nexcept SystemExit:\n    pass\n"
              "import jax\nprint('DEVICES', jax.device_count())")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(CIRKIT_HOST_DEVICES="2", JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DEVICES 2" in out.stdout
