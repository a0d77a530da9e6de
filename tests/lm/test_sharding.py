"""The causal LM split over devices (batch data-parallel) returns what one device returns.

Runs in a subprocess with two host devices (``--xla_force_host_platform_device_count=2``): the flag must be
set before JAX starts, and this test process has started it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the checkpoint is written by transformers + torch (the test extra)")

from conftest import xla_flags  # noqa: E402
from lm_fixtures import make_word_lm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
import jax, numpy as np
from cirkit.lm.encoder import LMTextEncoder
from cirkit.lm.generate import greedy_generate
from cirkit.lm.sharding import placement
from cirkit.lm.weights import load_lm

folder = sys.argv[1]
one = jax.devices()[:1]
lm = load_lm(folder)
rng = np.random.default_rng(0)
prompts = [rng.integers(3, 96, size=n).tolist() for n in (5, 19, 2)]  # three rows over two devices: one padded
sharded, logits = greedy_generate(lm.params, lm.config, prompts, 7, eos_ids=(), return_logits=True)
single, single_logits = greedy_generate(lm.params, lm.config, prompts, 7, eos_ids=(), return_logits=True, devices=one)
texts = ["w3 w7 w9", "w1 w5 w8 w13 w21 w34", "w2"]
pooled = LMTextEncoder(folder).encode_texts(texts)
pooled_one = LMTextEncoder(folder, devices=one).encode_texts(texts)
print(json.dumps({
    "devices": jax.device_count(),
    "split_over": len(placement().split(np.zeros((3, 4))).sharding.device_set),
    "rows": [len(sharded), len(logits)],
    "same_tokens": sharded == single,
    "logits_diff": float(np.abs(logits - single_logits).max()),
    "logits_scale": float(np.abs(single_logits).max()),
    "pooled_diff": float(np.abs(pooled - pooled_one).max()),
    "pooled_rows": len(pooled),
}))
"""


def test_sharded_generation_and_pooling_equal_one_device(tmp_path):
    make_word_lm(tmp_path / "lm")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1",
           "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "lm")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["split_over"] == 2, "the batch really is split over two devices"
    assert out["rows"] == [3, 3], "the padding row is cut from the results"
    assert out["same_tokens"], "identical greedy generations"
    assert out["logits_scale"] > 0.1 and out["logits_diff"] < 1e-5
    assert out["pooled_rows"] == 3 and out["pooled_diff"] < 1e-5
