"""Checks that need two XLA host devices, so a fresh process (the flag is read when JAX starts, and the test
process has started it with one): each builds its inputs in ``folder`` and writes what it measured there.

They run as background jobs (tests/prebuild.py, jobs ``*_two_devices``, started with
``--xla_force_host_platform_device_count=2``) while other tests run; a test that reaches its job before the
background did runs it itself, the same command. The assertions on the results are in the tests."""

from __future__ import annotations

import json
from pathlib import Path

CLIP_TEXTS = ["the red dog", "a cat", "the dog and the cat"]


def _two_devices():
    import jax

    if jax.device_count() != 2:
        raise RuntimeError(f"expected two host devices, found {jax.devices()}")
    return jax


def clip(folder: Path) -> None:
    """A tiny CLIP checkpoint (``folder/ck``) and its text embeddings over two devices (``folder/two.npy``)."""
    import numpy as np
    from clip_fixtures import make_clip_checkpoint

    from cirkit.encoders.clip_encoder import ClipEncoder

    _two_devices()
    make_clip_checkpoint(folder / "ck")
    enc = ClipEncoder(str(folder / "ck"), buckets=(1, 8))
    np.save(folder / "two.npy", enc.encode_texts(CLIP_TEXTS))
    (folder / "result.json").write_text(json.dumps({"buckets": list(enc.buckets)}))


def lm(folder: Path) -> None:
    """A tiny word-level Llama (``folder/lm``): greedy generation and pooling split over two devices and on one."""
    import numpy as np
    from lm_fixtures import make_word_lm

    from cirkit.lm.encoder import LMTextEncoder
    from cirkit.lm.generate import greedy_generate
    from cirkit.lm.sharding import placement
    from cirkit.lm.weights import load_lm

    jax = _two_devices()
    make_word_lm(folder / "lm")
    one = jax.devices()[:1]
    model = load_lm(str(folder / "lm"))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 96, size=n).tolist() for n in (5, 19, 2)]  # three rows over two devices: one padded
    sharded, logits = greedy_generate(model.params, model.config, prompts, 7, eos_ids=(), return_logits=True)
    single, single_logits = greedy_generate(model.params, model.config, prompts, 7, eos_ids=(), return_logits=True,
                                            devices=one)
    texts = ["w3 w7 w9", "w1 w5 w8 w13 w21 w34", "w2"]
    pooled = LMTextEncoder(str(folder / "lm")).encode_texts(texts)
    pooled_one = LMTextEncoder(str(folder / "lm"), devices=one).encode_texts(texts)
    (folder / "result.json").write_text(json.dumps({
        "split_over": len(placement().split(np.zeros((3, 4))).sharding.device_set),
        "rows": [len(sharded), len(logits)],
        "same_tokens": sharded == single,
        "logits_diff": float(np.abs(logits - single_logits).max()),
        "logits_scale": float(np.abs(single_logits).max()),
        "pooled_diff": float(np.abs(pooled - pooled_one).max()),
        "pooled_rows": len(pooled),
    }))


def trainer(folder: Path) -> None:
    """The tiny task trained 4 steps on one device, on two, and with no devices named (all local ones); and the
    error an odd batch over two devices gives."""
    import dataclasses

    import numpy as np
    from trainer_fixtures import TinyTask, tiny_data

    from cirkit.training import TrainerConfig, train

    jax = _two_devices()
    cfg = TrainerConfig(steps=4, batch_size=16, grad_accum=2, learning_rate=5e-2, warmup_steps=0, decay_steps=50)
    one = train(TinyTask(), tiny_data(), cfg, devices=jax.devices()[:1])
    two = train(TinyTask(), tiny_data(), cfg, devices=jax.devices())
    default = train(TinyTask(), tiny_data(), cfg)  # no devices named: all local ones (what the CLI relies on)
    try:
        train(TinyTask(), tiny_data(), dataclasses.replace(cfg, batch_size=15, grad_accum=1))
        odd_batch_error = None
    except ValueError as exc:
        odd_batch_error = str(exc)
    init = TinyTask().init(jax.random.split(jax.random.PRNGKey(0))[0])
    moved = max(float(np.abs(one.params[k] - (np.asarray(init[k.split("/")[0]]["w"]) if "/" in k else 0)).max())
                for k in one.params)
    (folder / "result.json").write_text(json.dumps({
        "default_equals_two": all(np.array_equal(default.params[k], two.params[k]) for k in two.params),
        "odd_batch_error": odd_batch_error,
        "worst": max(float(np.abs(one.params[k] - two.params[k]).max()) for k in one.params),
        "moved": moved,
        "loss_gap": float(np.abs(one.losses - two.losses).max()),
    }))
