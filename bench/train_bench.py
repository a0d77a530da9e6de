"""cirkit's CLIP training step, before and after the generic trainer, in the same run on this machine.

The demo's model (width 64, 2 layers, patch 16, 64x64 images, batch 256) on built-in-style captions and
random pixels. "old" is the loop cirkit used before (its code, kept here: float32 pixels normalised on the
host, a host gather and a ``float(loss)`` sync every step, every position through every layer); "new" is
:func:`cirkit.training.train` (patches cut on the host, normalisation folded into the patch embedding, the
last layer run for the pooled rows only, attention laid out per head, 20 steps per dispatch, donated state, and
the products' operands in bfloat16 with float32 results: ``TrainConfig.matmul``, :mod:`cirkit.encoders.mixed_matmul`).
The machine is shared, so the arms run interleaved in rounds (old, new in float32, new, new on 2 devices, old, ...)
and both wall and CPU seconds (user + sys, all threads) are averaged over the rounds, with the range of the
per-round ratios (each round's arm against that round's old loop); the load average is printed
before and after. Also prints the achieved GFLOP/s of a new step (XLA's own FLOP count) against the peak of a
matmul with the step's operand dtype measured in the same run, both per wall second and per CPU second, and
against a matmul of the model's own shape (width 64: below the square peak on this CPU, so the nearer bound).
The new loop runs on one JAX CPU device in float32 (the products before mixed precision) and with the default,
and data-parallel on two (what ``cirkit demo`` gives JAX, :mod:`cirkit.host_devices`; the bench sets the same
flag before importing JAX). A last arm, "compute only", runs the last arm's compiled dispatch alone on one chunk of
batches placed once, without the trainer's host side (reading and cutting batches, transfers, fetching losses):
the floor for any change outside the compiled step. ``python bench/train_bench.py [ROUNDS] [PAIRS]``.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cirkit.host_devices import DEMO_DEVICES, configure_host_devices  # noqa: E402

configure_host_devices(default=DEMO_DEVICES)  # before JAX starts: 2 CPU devices, as `cirkit demo` gives it

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402
from rows import record  # noqa: E402
from train_reference import original_loop  # noqa: E402

from cirkit.builtin.scenes import caption, random_scene  # noqa: E402
from cirkit.pipelines.demo import DemoConfig  # noqa: E402
from cirkit.training import ArraySource, train  # noqa: E402
from cirkit.training.clip_trainer import ClipTask, TrainConfig, _text_side, _tokenize, clip_model_config  # noqa: E402
from cirkit.training.loop import (  # noqa: E402
    STEPS_PER_CALL,
    _compute_settings,
    _gather,
    _Placement,
    _run_steps,
    _split,
    build_optimiser,
)
from cirkit.training.task import prepare  # noqa: E402
from cirkit.training.vocab import tokenizer_files  # noqa: E402

# per round; the new loop is called for the demo's segment (``checkpoint_every`` = 250 steps, one cached stage),
# as the demo calls it: each call pays a fixed cost (initialising the task to split its parameters, placing the
# state, reading the first dispatch's batches, fetching the result), about 0.2-0.3 s, which a 40-step call
# spread as ~6 ms over each step
OLD_STEPS, NEW_STEPS = 10, TrainConfig().checkpoint_every


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


def new_loop(cfg: TrainConfig, task: ClipTask, data: ArraySource, devices: list):
    """``run(steps)``: ``steps`` more steps of :func:`cirkit.training.train` on ``devices`` from where the last
    call stopped."""
    trainer = dataclasses.replace(cfg.trainer(), steps=10**6)
    state = {"checkpoint": train(task, data, trainer, stop=STEPS_PER_CALL, devices=devices)}  # compiles

    def run(steps: int) -> np.ndarray:
        state["checkpoint"] = train(task, data, trainer, start=state["checkpoint"], stop=state["checkpoint"].step + steps,
                                    devices=devices)
        return state["checkpoint"].losses[-steps:]

    return run


def compute_only(cfg: TrainConfig, task: ClipTask, data: ArraySource, devices: list):
    """``run(steps)``: the trainer's compiled dispatch alone, ``steps / STEPS_PER_CALL`` times on one chunk of batches
    placed once: no host work (no batch reads, no patch cutting, no transfers, no loss fetch). What the trainer would
    cost if the host side were free, so the floor of any change outside the compiled step."""
    trainer = cfg.trainer()
    place = _Placement(devices, trainer.batch_size)
    _, trainable, frozen = _split(task, jax.random.PRNGKey(trainer.seed))
    state = place.state((trainable, build_optimiser(trainer).init(trainable), frozen))
    batches = place.batches(_gather(task, data, trainer, 0, STEPS_PER_CALL))
    settings, key = _compute_settings(trainer), jax.random.PRNGKey(1)

    def run(steps: int) -> np.ndarray:
        nonlocal state
        trainable, opt_state, frozen = state
        for i in range(steps // STEPS_PER_CALL):
            trainable, opt_state, losses = _run_steps(trainable, opt_state, frozen, batches, jnp.int32(i * STEPS_PER_CALL),
                                                      key, task=task, cfg=settings)
        state = (trainable, opt_state, frozen)
        return np.asarray(losses)

    run(STEPS_PER_CALL)  # compiles
    return run


def step_flops(cfg: TrainConfig, task: ClipTask, data: ArraySource) -> float:
    """XLA's FLOP count of one new step (one step per dispatch: a scan body is counted once, not per trip)."""
    trainer = cfg.trainer()
    _, trainable, frozen = _split(task, jax.random.PRNGKey(0))
    opt_state = build_optimiser(trainer).init(trainable)
    one = prepare(task, data.batch(np.arange(cfg.batch_size)))
    batch = {k: np.zeros((1, 1) + v.shape, v.dtype) for k, v in one.items()}
    lowered = _run_steps.lower(trainable, opt_state, frozen, batch, jnp.int32(0), jax.random.PRNGKey(0),
                               task=task, cfg=_compute_settings(trainer))
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def matmul_peaks(n: int = 2048, repeats: int = 8, shape: tuple[int, int, int] | None = None,
                 dtype=jnp.float32) -> tuple[float, float]:
    """GFLOP per wall second and per CPU second of a jitted n x n matmul (or (m, k) x (k, n) for ``shape`` =
    (m, k, n)) with operands in ``dtype`` and a float32 result, measured now."""
    m, k, n = shape or (n, n, n)
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal(s), dtype) for s in ((m, k), (k, n)))
    f = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    f(a, b).block_until_ready()
    with Meter() as meter:
        for _ in range(repeats):
            f(a, b).block_until_ready()
        wall, cpu, _ = meter.per_step(repeats)
    return 2 * m * k * n / wall / 1e9, 2 * m * k * n / cpu / 1e9


def main(rounds: int = 3, pairs: int = 2048) -> None:
    rng = np.random.default_rng(0)
    captions = [caption(random_scene(rng)) for _ in range(pairs)]
    images = rng.integers(0, 256, (pairs, 64, 64, 3), dtype=np.uint8)
    cfg = DemoConfig().train  # the demo's CLIP: mixed precision
    _, vocab_size, trimmed = _text_side(captions, cfg.context_length)
    config = clip_model_config(cfg, vocab_size, images.shape[1])
    task, data = ClipTask(config, cfg.matmul), ArraySource({"pixels": images, "ids": trimmed})
    load_before = os.getloadavg()[0]
    peak_wall, peak_cpu = matmul_peaks(dtype=jnp.dtype(cfg.matmul))  # the peak of the step's own products
    f32_wall, f32_cpu = matmul_peaks()
    # the step's own matmul shape (MLP fc1 of the text tower: 256 x 32 rows, width 64 -> 256): what the matmuls
    # of a width-64 model can reach here, an upper bound nearer the truth than the square peak
    model_wall, model_cpu = matmul_peaks(repeats=40, shape=(cfg.batch_size * cfg.context_length, cfg.width, 4 * cfg.width),
                                         dtype=jnp.dtype(cfg.matmul))
    print(describe(f32_wall))
    print(f"{cfg.matmul} x {cfg.matmul} -> float32 matmul peak (the step's products): {peak_wall:.0f} GFLOP/s")
    old = original_loop(cfg, config, images, _tokenize(tokenizer_files(captions), captions, cfg.context_length))
    devices = jax.local_devices()[:2]
    arms = {"old loop": (old, OLD_STEPS),
            "new, float32": (new_loop(cfg, ClipTask(config, "float32"), data, devices[:1]), NEW_STEPS),
            "new, 1 device": (new_loop(cfg, task, data, devices[:1]), NEW_STEPS)}
    if len(devices) == 2:
        arms["new, 2 devices"] = (new_loop(cfg, task, data, devices), NEW_STEPS)
    # the last arm's compiled dispatch alone (its steps a multiple of the dispatch length)
    arms[f"{list(arms)[-1]}, compute only"] = (compute_only(cfg, task, data, devices),
                                               NEW_STEPS // STEPS_PER_CALL * STEPS_PER_CALL)
    old(2)  # compiles
    per_round = {name: [] for name in arms}  # (wall, CPU, faults) per step, one row per round
    for _ in range(rounds):
        for name, (run, steps) in arms.items():
            with Meter() as meter:
                run(steps)
                per_round[name].append(meter.per_step(steps))
    totals = {name: np.mean(rows, axis=0) for name, rows in per_round.items()}
    flops = step_flops(cfg, task, data)
    print(f"CLIP training step (demo model, batch {cfg.batch_size}; {rounds} interleaved rounds of {OLD_STEPS} old "
          f"and {NEW_STEPS} new steps per arm; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after):")
    for name, (wall, cpu, faults) in totals.items():
        print(f"  {name:16s} {wall:.4f} s/step wall, {cpu:.4f} CPU s/step, {faults:,.0f} page faults/step")
    wall_old, cpu_old, _ = totals["old loop"]
    rows = []
    for name in list(arms)[1:]:
        wall, cpu, _ = totals[name]
        dtype, (top_wall, top_cpu) = ("float32", (f32_wall, f32_cpu)) if "float32" in name else (cfg.matmul, (peak_wall, peak_cpu))
        print(f"  {name}: {wall_old / wall:.2f}x faster in wall time, {cpu_old / cpu:.2f}x in CPU time (goal >= 4x); "
              f"{flops / 1e9:.2f} GFLOP a step (XLA count, one device's program): {flops / wall / 1e9:.1f} GFLOP/s wall "
              f"= {100 * flops / wall / 1e9 / top_wall:.1f} % of the {dtype} matmul peak ({top_wall:.0f} GFLOP/s), "
              f"{flops / cpu / 1e9:.1f} GFLOP per CPU s = {100 * flops / cpu / 1e9 / top_cpu:.1f} % of its "
              f"{top_cpu:.0f}" + ("" if "float32" in name else
                                  f"; {100 * flops / cpu / 1e9 / model_cpu:.0f} % of the width-64 matmul's per CPU s"))
        if rounds > 1:  # the spread within this run: each round's arm against the same round's old loop
            ratios = np.asarray(per_round["old loop"])[:, :2] / np.asarray(per_round[name])[:, :2]
            print(f"    per round: {ratios[:, 0].min():.2f}-{ratios[:, 0].max():.2f}x wall, "
                  f"{ratios[:, 1].min():.2f}-{ratios[:, 1].max():.2f}x CPU")
        rows.append((name, wall, cpu))
    print(f"  a ({cfg.batch_size * cfg.context_length} x {cfg.width}) x ({cfg.width} x {4 * cfg.width}) matmul alone: "
          f"{model_wall:.1f} GFLOP/s wall, {model_cpu:.1f} GFLOP per CPU s")
    name, wall, cpu = next(row for row in reversed(rows) if not row[0].endswith("compute only"))
    record(f"CLIP training step (demo model, batch {cfg.batch_size}), cirkit's trainer ({name}) vs the original loop "
           "(`bench/train_reference.py`), interleaved rounds: s/step wall; CPU s/step",
           f"{wall:.3f} vs {wall_old:.3f} ({wall_old / wall:.2f}×); {cpu:.3f} vs {cpu_old:.3f} "
           f"({cpu_old / cpu:.2f}×)", "≥ 4×")
    record(f"CLIP training step ({name}): GFLOP/s achieved (XLA's FLOP count) vs the jit {cfg.matmul} x {cfg.matmul} "
           "-> float32 matmul peak, and GFLOP per CPU s vs a lone such matmul of the step's own width-64 shape",
           f"{flops / wall / 1e9:.1f} ({100 * flops / wall / 1e9 / peak_wall:.0f} % of {peak_wall:.0f}); "
           f"{flops / cpu / 1e9:.1f} ({100 * flops / cpu / 1e9 / model_cpu:.0f} % of {model_cpu:.0f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
