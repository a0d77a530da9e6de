"""cirkit's CLIP training step, before and after the generic trainer, in the same run on this machine.

The demo's model (width 64, 2 layers, patch 16, 64x64 images, batch 256) on built-in-style captions and
random pixels. "old" is the loop cirkit used before (float32 pixels normalised on the host, a host gather
and a ``float(loss)`` sync every step); "new" is :func:`cirkit.training.train` (uint8 pixels normalised in
jit, ids cut to the longest caption, 20 steps per dispatch, donated state, asynchronous loss fetch). Prints
s/step of both, their ratio (goal >= 4x), and the achieved GFLOP/s of a new step (XLA's own FLOP count)
against a float32 matmul peak measured in the same run. ``python bench/train_bench.py [STEPS] [PAIRS]``.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, matmul_peak  # noqa: E402

from cirkit.builtin.scenes import caption, random_scene  # noqa: E402
from cirkit.encoders.clip_image import OPENAI_MEAN, OPENAI_STD  # noqa: E402
from cirkit.encoders.clip_model import ClipText, ClipVision  # noqa: E402
from cirkit.training import ArraySource, train  # noqa: E402
from cirkit.training.clip_trainer import ClipTask, TrainConfig, _text_side, _tokenize, clip_model_config  # noqa: E402
from cirkit.training.loop import STEPS_PER_CALL, _compute_settings, _run_steps, _split, build_optimiser  # noqa: E402
from cirkit.training.vocab import tokenizer_files  # noqa: E402


class Meter:
    """Wall seconds, CPU seconds (all threads; steadier than wall on a shared machine) and minor page faults."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        return self

    def per_step(self, steps: int) -> tuple[float, float, float]:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults
        return ((time.perf_counter() - self.wall) / steps, (time.process_time() - self.cpu) / steps, faults / steps)

    def __exit__(self, *exc):
        return False


def old_steps(cfg: TrainConfig, images: np.ndarray, captions: list[str], steps: int) -> tuple[float, float, float]:
    """(wall s, CPU s, page faults) per step of the previous loop (its code, kept here as the reference)."""
    files = tokenizer_files(captions)
    config = clip_model_config(cfg, _text_side(captions, cfg.context_length)[1], images.shape[1])
    ids = _tokenize(files, captions, cfg.context_length)
    x = (images.astype(np.float64) * (1 / 255)).astype(np.float32).transpose(0, 3, 1, 2)
    pixels = (x - np.asarray(OPENAI_MEAN, np.float32)[:, None, None]) / np.asarray(OPENAI_STD, np.float32)[:, None, None]
    text, vision = ClipText(config), ClipVision(config)
    k1, k2, _ = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
    params = {"text": text.init(k1, jnp.asarray(ids[:1]))["params"],
              "vision": vision.init(k2, jnp.asarray(pixels[:1]))["params"],
              "logit_scale": jnp.asarray(np.log(1 / 0.07), jnp.float32)}
    optimiser = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps, 1000),
                            weight_decay=cfg.weight_decay)
    state = optimiser.init(params)

    def loss_fn(p, batch_ids, batch_pixels):
        t = text.apply({"params": p["text"]}, batch_ids)
        v = vision.apply({"params": p["vision"]}, batch_pixels)
        t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
        v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
        logits = jnp.exp(jnp.minimum(p["logit_scale"], np.log(100.0))) * v @ t.T
        labels = jnp.arange(len(batch_ids))
        return (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()) / 2

    @jax.jit
    def step(p, s, batch_ids, batch_pixels):
        loss, grads = jax.value_and_grad(loss_fn)(p, batch_ids, batch_pixels)
        updates, s = optimiser.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(cfg.seed)
    losses = []
    for _ in range(2):  # warm-up (compilation)
        idx = rng.permutation(len(ids))[: cfg.batch_size]
        params, state, loss = step(params, state, jnp.asarray(ids[idx]), jnp.asarray(pixels[idx]))
    with Meter() as meter:
        for _ in range(steps):
            idx = rng.permutation(len(ids))[: cfg.batch_size]
            params, state, loss = step(params, state, jnp.asarray(ids[idx]), jnp.asarray(pixels[idx]))
            losses.append(float(loss))
        return meter.per_step(steps)


def new_steps(cfg: TrainConfig, images: np.ndarray, captions: list[str], steps: int):
    """((wall s, CPU s, page faults) per step, XLA's FLOPs per step) of :func:`cirkit.training.train`."""
    _, vocab_size, ids = _text_side(captions, cfg.context_length)
    task = ClipTask(clip_model_config(cfg, vocab_size, images.shape[1]))
    data = ArraySource({"pixels": images, "ids": ids})
    trainer = dataclasses.replace(cfg.trainer(), steps=STEPS_PER_CALL + steps)
    warm = train(task, data, trainer, stop=STEPS_PER_CALL)  # compiles the dispatch
    with Meter() as meter:
        train(task, data, trainer, start=warm)
        measured = meter.per_step(steps)
    _, trainable, frozen = _split(task, jax.random.PRNGKey(0))
    opt_state = build_optimiser(trainer).init(trainable)
    # one step per dispatch, so that XLA's count is one step's (a scan body is counted once, not per trip)
    batch = {k: np.zeros((1, 1) + v.shape, v.dtype) for k, v in data.batch(np.arange(cfg.batch_size)).items()}
    lowered = _run_steps.lower(trainable, opt_state, frozen, batch, jnp.int32(0), jax.random.PRNGKey(0),
                               task=task, cfg=_compute_settings(trainer))
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return measured, float(cost.get("flops", float("nan")))


def main(steps: int = 40, pairs: int = 2048) -> None:
    rng = np.random.default_rng(0)
    captions = [caption(random_scene(rng)) for _ in range(pairs)]
    images = rng.integers(0, 256, (pairs, 64, 64, 3), dtype=np.uint8)
    cfg = TrainConfig()
    peak = matmul_peak()
    print(describe(peak))
    old = old_steps(cfg, images, captions, steps)
    new, flops = new_steps(cfg, images, captions, steps)
    print(f"CLIP training step (demo model, batch {cfg.batch_size}, {steps} timed steps each):")
    for name, (wall, cpu, faults) in (("old loop", old), ("new loop", new)):
        print(f"  {name}   {wall:.4f} s/step wall, {cpu:.4f} CPU s/step, {faults:,.0f} page faults/step")
    print(f"  speed-up   {old[0] / new[0]:.2f}x wall, {old[1] / new[1]:.2f}x CPU time (goal >= 4x)")
    print(f"  new step   {flops / 1e9:.2f} GFLOP (XLA count), {flops / new[0] / 1e9:.1f} GFLOP/s = "
          f"{100 * flops / new[0] / 1e9 / peak:.1f} % of the float32 matmul peak")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
