"""A data-parallel step over 2 devices equals the single-device step, and by default the trainer uses every local
device: measured in a fresh process with 2 host devices (tests/two_device_probes.py's ``trainer``, run in the
background while earlier tests run: tests/prebuild.py)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.prebuild("trainer_two_devices")
def test_sharded_steps_equal_unsharded_steps(prebuilds):
    out = json.loads((prebuilds.wait("trainer_two_devices") / "result.json").read_text())
    assert out["moved"] > 1e-2  # training changed the weights, so equality is not trivial
    assert out["worst"] <= 1e-6 and out["loss_gap"] <= 1e-6
    assert out["default_equals_two"], "no devices named: the trainer uses every local device"
    assert out["odd_batch_error"] is not None, "an odd batch was split over 2 devices"
    assert "batch_size 15" in out["odd_batch_error"] and "2 devices" in out["odd_batch_error"], out["odd_batch_error"]
