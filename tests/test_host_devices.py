"""`cirkit demo` gives JAX 2 CPU devices, other commands one unless told otherwise (cirkit/host_devices.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cirkit.host_devices import FLAG, configure_host_devices


def test_adds_the_flag_to_other_xla_flags_and_keeps_a_users_own_count():
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    assert configure_host_devices(env, default=2) == 2
    assert env["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {FLAG}=2"
    assert configure_host_devices(env, default=2) is None and env["XLA_FLAGS"].count(FLAG) == 1  # idempotent
    mine = {"XLA_FLAGS": f"{FLAG}=4", "CIRKIT_HOST_DEVICES": "3"}
    assert configure_host_devices(mine, default=2) is None and mine["XLA_FLAGS"] == f"{FLAG}=4"
    three = {"CIRKIT_HOST_DEVICES": "3"}  # the variable wins over the command's default, either way
    assert configure_host_devices(three) == 3 and three["XLA_FLAGS"] == f"{FLAG}=3"
    off = {"CIRKIT_HOST_DEVICES": "1"}
    assert configure_host_devices(off, default=2) is None and "XLA_FLAGS" not in off
    plain = {}
    assert configure_host_devices(plain) is None and plain == {}  # default: one device, nothing set


def test_a_late_call_changes_nothing(monkeypatch):
    import jax  # noqa: F401 - this process's JAX has started: the flag would no longer count

    monkeypatch.setenv("CIRKIT_HOST_DEVICES", "2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert configure_host_devices() is None and "XLA_FLAGS" not in os.environ


@pytest.mark.parametrize("value", ["0", "two", "-1", "\u00b2"])  # "²" passes str.isdigit but not int()
def test_a_bad_count_is_an_error_naming_the_variable(value):
    with pytest.raises(ValueError, match=f"CIRKIT_HOST_DEVICES.*{value!r}"):
        configure_host_devices({"CIRKIT_HOST_DEVICES": value})


def _start(args: list[str], **extra: str) -> subprocess.Popen:
    """A fresh process running the CLI with ``args``, then printing how many devices JAX started with."""
    script = ("from cirkit.cli import main\n"
              f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
              "import jax\nprint('DEVICES', jax.device_count())")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CIRKIT_HOST_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd(), **extra)
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _devices(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return int(out.split("DEVICES")[1])


def test_the_demo_starts_jax_with_two_cpu_devices_and_other_commands_with_one(tmp_path):
    store = str(tmp_path / "store")
    # three independent processes, started together (each spends ~2 s importing)
    procs = [_start(["demo", "--help"]),  # the group runs before the subcommand's --help
             _start(["ls", "--store", store]),
             _start(["ls", "--store", store], CIRKIT_HOST_DEVICES="2")]
    try:
        assert [_devices(p) for p in procs] == [2, 1, 2]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_bad_count_is_a_usage_error_of_the_command_line_not_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cirkit.cli import main

    monkeypatch.setenv("CIRKIT_HOST_DEVICES", "two")
    result = CliRunner().invoke(main, ["ls", "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "CIRKIT_HOST_DEVICES must be a whole number" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
