"""A data-parallel step over 2 devices equals the single-device step (2 host devices forced in a subprocess), and
by default the trainer uses every local device."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import xla_flags

SCRIPT = textwrap.dedent("""
    import dataclasses, jax, numpy as np
    from trainer_fixtures import TinyTask, tiny_data
    from cirkit.training import TrainerConfig, train
    assert len(jax.devices()) == 2, jax.devices()
    cfg = TrainerConfig(steps=4, batch_size=16, grad_accum=2, learning_rate=5e-2, warmup_steps=0, decay_steps=50)
    one = train(TinyTask(), tiny_data(), cfg, devices=jax.devices()[:1])
    two = train(TinyTask(), tiny_data(), cfg, devices=jax.devices())
    default = train(TinyTask(), tiny_data(), cfg)  # no devices named: all local ones (what the CLI relies on)
    assert all(np.array_equal(default.params[k], two.params[k]) for k in two.params)
    try:
        train(TinyTask(), tiny_data(), dataclasses.replace(cfg, batch_size=15, grad_accum=1))
        raise AssertionError("an odd batch was split over 2 devices")
    except ValueError as exc:
        assert "batch_size 15" in str(exc) and "2 devices" in str(exc), exc
    worst = max(float(np.abs(one.params[k] - two.params[k]).max()) for k in one.params)
    moved = max(float(np.abs(one.params[k] - np.asarray(TinyTask().init(jax.random.split(jax.random.PRNGKey(0))[0])
                [k.split("/")[0]]["w"] if "/" in k else 0)).max()) for k in one.params)
    print("RESULT", worst, moved, float(np.abs(one.losses - two.losses).max()))
""")


def test_sharded_steps_equal_unsharded_steps(tmp_path):
    env = {**os.environ, "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2"), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.path.join(os.getcwd(), "tests")])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    worst, moved, loss_gap = (float(x) for x in out.stdout.split("RESULT")[1].split())
    assert moved > 1e-2  # training changed the weights, so equality is not trivial
    assert worst <= 1e-6 and loss_gap <= 1e-6
