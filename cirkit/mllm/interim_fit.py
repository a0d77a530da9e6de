"""A plain AdamW loop over a task's loss, used until the trained methods move onto the generic resumable
trainer in ``cirkit/training/`` (issue 16 section 3), which brings checkpoints, resume and sharding.

Deterministic: the batch order is a seeded permutation per epoch; the loss curve is returned with the tree.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

__all__ = ["fit"]


def fit(task, make_batch, n_examples: int, *, steps: int, batch_size: int, learning_rate: float, seed: int,
        weight_decay: float = 0.01, progress=None) -> tuple[dict, list[float]]:
    """``make_batch(indices)`` -> a batch dict; returns (trained tree, per-step losses)."""
    params = task.init()
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(1, steps // 20), max(steps, 2))
    opt = optax.adamw(schedule, weight_decay=weight_decay)
    state = opt.init(params)

    @jax.jit
    def step(p, s, batch):
        (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(p, batch)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(seed)
    order: list[int] = []
    losses = []
    size = min(batch_size, n_examples)
    for _ in range(steps):
        if len(order) < size:
            order.extend(rng.permutation(n_examples).tolist())
        indices, order = order[:size], order[size:]
        params, state, loss = step(params, state, make_batch(np.asarray(indices)))
        losses.append(float(loss))
        if progress is not None:
            progress(1)
    return params, losses
