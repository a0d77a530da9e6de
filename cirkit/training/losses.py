"""Contrastive losses, pure functions of embeddings (jit- and shard-friendly)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["info_nce", "MAX_LOGIT_SCALE"]

MAX_LOGIT_SCALE = float(np.log(100.0))  # CLIP's clamp: the temperature never drops below 1/100


def _normalise(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def info_nce(queries, targets, log_scale, hard_negatives=None):
    """Symmetric InfoNCE over a batch of matching (query, target) rows with a learnable temperature.

    ``log_scale`` is the log of the inverse temperature (clamped at log 100, as CLIP does). Query i's positive
    is target i, the other targets are its negatives and vice versa; ``hard_negatives`` (B, D), if given,
    are extra candidates for the query-to-target direction only (row i is usually a near miss for query i,
    but every query sees all of them). Returns the mean of the two directions' cross-entropies.
    """
    q, t = _normalise(queries), _normalise(targets)
    scale = jnp.exp(jnp.minimum(log_scale, MAX_LOGIT_SCALE))
    logits = scale * q @ t.T
    labels = jnp.arange(q.shape[0])
    backward = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()
    if hard_negatives is not None:
        logits = jnp.concatenate([logits, scale * q @ _normalise(hard_negatives).T], axis=1)
    forward = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return (forward + backward) / 2
