"""The generic training loop: optax, gradient accumulation, data-parallel sharding, several steps per dispatch.

Step ``i`` is a pure function of the state after step ``i - 1``, the seed and ``i``: its micro-batches come
from :func:`.data.batch_indices` and its randomness from ``fold_in(seed key, i)``. So a run restarted from a
:class:`.Checkpoint` continues exactly as if it had never stopped.

Speed: steps run ``STEPS_PER_CALL`` at a time inside one jitted ``lax.scan`` (one dispatch, no per-step host
sync; XLA allocates its scratch memory once per dispatch, and a fresh allocation costs ~60k page faults for
this CLIP), parameters and optimiser state are donated (updated in place), the next
chunk's batches are read on the host while the device computes, and losses are fetched a chunk late. The
compiled step is cached on (task, optimiser settings), which is why tasks are hashable frozen dataclasses.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checkpoint import Checkpoint, flatten, unflatten
from .config import TrainerConfig, learning_rate_schedule
from .data import DataSource, batch_indices, steps_per_epoch
from .task import Task, evaluate, prepare, trainable_mask

__all__ = ["train", "observe", "build_optimiser", "full_params", "STEPS_PER_CALL"]

STEPS_PER_CALL = 20

# (step, stop, losses of the steps just finished) after every dispatch; progress display and tests hook in here.
Observer = Callable[[int, int, np.ndarray], None]
_observers: contextvars.ContextVar[tuple[Observer, ...]] = contextvars.ContextVar("training_observers", default=())


@contextlib.contextmanager
def observe(callback: Observer) -> Iterator[None]:
    """Within this block every training loop calls ``callback(step, stop, losses)`` after each dispatch (an
    exception it raises stops training there, as a killed process would)."""
    token = _observers.set(_observers.get() + (callback,))
    try:
        yield
    finally:
        _observers.reset(token)


def build_optimiser(cfg: TrainerConfig) -> optax.GradientTransformation:
    adamw = optax.adamw(learning_rate_schedule(cfg), weight_decay=cfg.weight_decay)
    return optax.chain(optax.clip_by_global_norm(cfg.clip_grad_norm), adamw) if cfg.clip_grad_norm > 0 else adamw


def _compute_settings(cfg: TrainerConfig) -> TrainerConfig:
    """The config with the fields a step's computation ignores set to fixed values (fewer recompiles)."""
    return dataclasses.replace(cfg, steps=1, checkpoint_every=1, eval_every=0)


def _split(task: Task, rng) -> tuple[dict, dict, dict]:
    """(all params, trainable, frozen), each flat by name."""
    params = task.init(rng)
    flat, mask = flatten(params), flatten(trainable_mask(task, params))
    trainable = {k: v for k, v in flat.items() if mask[k]}
    if not trainable:
        raise ValueError(f"{type(task).__name__}.trainable marks no parameter as trainable")
    return flat, trainable, {k: v for k, v in flat.items() if not mask[k]}


def full_params(task: Task, checkpoint: Checkpoint, seed: int) -> dict:
    """The task's nested parameters with the checkpoint's trained values in place of the initial ones."""
    init_rng, _ = jax.random.split(jax.random.PRNGKey(seed))
    names: list[str] = []

    def trace(rng):  # traced once by eval_shape, never run: init's names in its own order (its result's are sorted)
        names.extend(flatten(task.init(rng)))
        return ()

    try:
        jax.eval_shape(trace, init_rng)
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError):  # an init that reads values (float(), int()):
        names.clear()  # it runs below
    if names and checkpoint.params.keys() >= set(names):
        # every parameter trained: each initial value would be replaced, so only the names are needed, and tracing
        # ``init`` gives them without running it (its eager ops: 3-12 s CPU for the oracle world's CLIP)
        return unflatten({**dict.fromkeys(names), **checkpoint.params})
    flat, _, _ = _split(task, init_rng)
    return unflatten({**{k: np.asarray(v) for k, v in flat.items()}, **checkpoint.params})


@functools.partial(jax.jit, static_argnames=("task", "cfg"), donate_argnames=("trainable", "opt_state"))
def _run_steps(trainable, opt_state, frozen, batches, first_step, key, *, task: Task, cfg: TrainerConfig):
    """``len(batches)`` optimiser steps in one dispatch; ``batches`` fields are (steps, grad_accum, batch, ...)."""
    optimiser = build_optimiser(cfg)

    def micro_loss(t, batch, rng):
        loss, aux = task.loss(unflatten({**frozen, **t}), batch, rng)
        return loss, aux

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def one_step(carry, xs):
        t, s = carry
        step_batches, step = xs
        step_key = jax.random.fold_in(key, step)
        if cfg.grad_accum == 1:
            (loss, _), grads = grad_fn(t, jax.tree_util.tree_map(lambda x: x[0], step_batches), step_key)
        else:
            def accumulate(acc, xs_micro):
                batch, a = xs_micro
                (loss, _), g = grad_fn(t, batch, jax.random.fold_in(step_key, a))
                return jax.tree_util.tree_map(jnp.add, acc, (loss, g)), None

            zero = (jnp.zeros((), jnp.float32), jax.tree_util.tree_map(jnp.zeros_like, t))
            (loss, grads), _ = jax.lax.scan(accumulate, zero, (step_batches, jnp.arange(cfg.grad_accum)))
            loss, grads = jax.tree_util.tree_map(lambda x: x / cfg.grad_accum, (loss, grads))
        updates, s = optimiser.update(grads, s, t)
        return (optax.apply_updates(t, updates), s), loss

    steps = first_step + jnp.arange(jax.tree_util.tree_leaves(batches)[0].shape[0])
    (trainable, opt_state), losses = jax.lax.scan(one_step, (trainable, opt_state), (batches, steps))
    return trainable, opt_state, losses


class _Placement:
    """Where arrays go: one device, or a 1-D data mesh (batch axis split, everything else replicated)."""

    def __init__(self, devices, batch_size: int) -> None:
        devices = list(devices or jax.local_devices())
        if batch_size % len(devices):
            raise ValueError(f"batch_size {batch_size} does not split evenly over {len(devices)} devices")
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.asarray(devices), ("data",))
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch = NamedSharding(mesh, PartitionSpec(None, None, "data"))

    def state(self, tree):
        return jax.device_put(tree, self.replicated)

    def batches(self, tree):
        return jax.device_put(tree, self.batch)


def _chunks(start: int, stop: int, per_call: int, eval_every: int) -> list[tuple[int, int]]:
    """[start, stop) cut into dispatches of at most ``per_call`` steps, also cut at evaluation steps.

    Each distinct dispatch length is one more compiled program (a whole training step: seconds to minutes), so
    where one length between ``per_call / 2`` and ``per_call`` divides every stretch between cuts, all dispatches
    take it (150 steps: 10 x 15, not 7 x 20 + 10). The weights do not depend on how steps are dispatched."""
    bounds = sorted({start, stop} | ({e for e in range(0, stop, eval_every) if e > start} if eval_every else set()))
    stretches = [b - a for a, b in zip(bounds, bounds[1:])]
    common = math.gcd(*stretches) if stretches else 0
    even = next((d for d in range(per_call, (per_call + 1) // 2 - 1, -1) if d and common % d == 0), per_call)
    return [(s, min(b, s + even)) for a, b in zip(bounds, bounds[1:]) for s in range(a, b, even)]


def _gather(task: Task, data: DataSource, cfg: TrainerConfig, first: int, last: int) -> dict[str, np.ndarray]:
    """The micro-batches of steps [first, last) read from ``data`` (and prepared by the task), as
    (steps, grad_accum, batch, ...)."""
    micro = range(first * cfg.grad_accum, last * cfg.grad_accum)
    idx = np.concatenate([batch_indices(cfg.seed, m, cfg.batch_size, len(data)) for m in micro])
    shape = (last - first, cfg.grad_accum, cfg.batch_size)
    return {k: v.reshape(shape + v.shape[1:]) for k, v in prepare(task, data.batch(idx)).items()}


def train(task: Task, data: DataSource, config: TrainerConfig, *, start: Checkpoint | None = None,
          stop: int | None = None, progress: Observer | None = None, devices=None,
          steps_per_call: int = STEPS_PER_CALL) -> Checkpoint:
    """Train ``task`` on ``data`` from ``start`` (or from ``task.init``) up to step ``stop`` (default
    ``config.steps``) and return the state there. ``devices``: the data-parallel devices (default: all)."""
    stop = config.steps if stop is None else stop
    steps_per_epoch(len(data), config.batch_size)  # a clear error when the batch is larger than the data
    init_rng, loop_key = jax.random.split(jax.random.PRNGKey(config.seed))
    _, trainable, frozen = _split(task, init_rng)
    optimiser = build_optimiser(config)
    opt_state = optimiser.init(trainable)
    step, losses, evals = 0, [], []
    if start is not None:
        _check_resume(start, trainable, stop)
        trainable = {k: np.array(v) for k, v in start.params.items()}  # copies: the step donates its state
        leaves, saved = jax.tree_util.tree_leaves(opt_state), start.opt_state
        if [np.shape(x) for x in saved] != [np.shape(x) for x in leaves]:
            raise ValueError(f"checkpoint's {len(saved)} optimiser tensors do not match this optimiser's "
                             f"{len(leaves)} (shapes differ)")
        opt_state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(opt_state), [np.array(x) for x in saved])
        step, losses, evals = start.step, [np.asarray(start.losses, np.float32)], list(start.evals)
    place = _Placement(devices, config.batch_size)
    trainable, opt_state, frozen = place.state((trainable, opt_state, frozen))
    settings, observers = _compute_settings(config), (*_observers.get(), *([progress] if progress else []))
    chunks = _chunks(step, stop, max(1, steps_per_call), config.eval_every)
    ready = _gather(task, data, config, *chunks[0]) if chunks else None
    finished: tuple[int, object] | None = None

    def report(done_step: int, chunk_losses) -> None:
        values = np.asarray(chunk_losses, np.float32)
        losses.append(values)
        for observer in observers:
            observer(done_step, stop, values)

    for i, (s0, s1) in enumerate(chunks):
        batches = place.batches(ready)
        trainable, opt_state, chunk_losses = _run_steps(
            trainable, opt_state, frozen, batches, jnp.int32(s0), loop_key, task=task, cfg=settings)
        if i + 1 < len(chunks):
            ready = _gather(task, data, config, *chunks[i + 1])  # overlaps the device's work on this chunk
        if finished is not None:
            report(*finished)  # the previous chunk's losses: it is done, this one keeps the device busy
        finished = (s1, chunk_losses)
        if config.eval_every and s1 % config.eval_every == 0:
            result = evaluate(task, unflatten({**frozen, **trainable}))
            if result is not None:
                evals.append((s1, result))
    if finished is not None:
        report(*finished)
    return Checkpoint.build(
        step=max(step, stop), position=max(step, stop) * config.grad_accum,
        params={k: np.asarray(v) for k, v in jax.device_get(trainable).items()},
        opt_state=[np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(opt_state))],
        losses=np.concatenate(losses) if losses else np.zeros(0, np.float32), evals=evals, config=config)


def _check_resume(start: Checkpoint, trainable: dict, stop: int) -> None:
    if start.step > stop:
        raise ValueError(f"cannot resume at step {start.step} to stop at the earlier step {stop}")
    expected = {k: np.shape(v) for k, v in trainable.items()}
    found = {k: np.shape(v) for k, v in start.params.items()}
    if expected != found:
        diff = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise ValueError(f"checkpoint parameters do not match the task's trainable parameters (first: {diff[:3]})")
