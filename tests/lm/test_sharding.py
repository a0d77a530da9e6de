"""The causal LM split over devices (batch data-parallel) returns what one device returns.

Measured in a fresh process with two host devices (``--xla_force_host_platform_device_count=2``: read when JAX
starts, and this test process has started it already), tests/two_device_probes.py's ``lm``, run in the background
while earlier tests run (tests/prebuild.py).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the checkpoint is written by transformers + torch (the test extra)")


@pytest.mark.prebuild("lm_two_devices")
def test_sharded_generation_and_pooling_equal_one_device(prebuilds):
    out = json.loads((prebuilds.wait("lm_two_devices") / "result.json").read_text())
    assert out["split_over"] == 2, "the batch really is split over two devices"
    assert out["rows"] == [3, 3], "the padding row is cut from the results"
    assert out["same_tokens"], "identical greedy generations"
    assert out["logits_scale"] > 0.1 and out["logits_diff"] < 1e-5
    assert out["pooled_rows"] == 3 and out["pooled_diff"] < 1e-5
