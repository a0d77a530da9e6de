"""Pooling an LLM's final hidden states into one vector: ``last`` (the last real token), ``mean`` (over real
tokens) or ``weighted_mean`` (a learned score per token, softmax over the real tokens; CIR-LVLM's best).

The weighted mean's score vector starts at zero, where it equals the mean, so training moves it away from a
known baseline. Rows are left-padded or carry masked gaps, so "last" is the last position (always real).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["POOLINGS", "init_pooling", "pool"]

POOLINGS = ("last", "mean", "weighted_mean")


def init_pooling(kind: str, dim: int) -> dict:
    return {"score": jnp.zeros((dim,), jnp.float32)} if kind == "weighted_mean" else {}


def pool(kind: str, params: dict, hidden, mask):
    """``hidden`` ``[batch, time, dim]`` and ``mask`` ``[batch, time]`` -> ``[batch, dim]`` (float32)."""
    hidden = hidden.astype(jnp.float32)
    if kind == "last":
        return hidden[:, -1]
    real = mask > 0
    if kind == "mean":
        weights = real.astype(jnp.float32)
        return (hidden * weights[..., None]).sum(1) / jnp.maximum(weights.sum(1, keepdims=True), 1.0)
    scores = jnp.where(real, hidden @ params["score"], -1e30)
    return jnp.einsum("bt,btd->bd", jax.nn.softmax(scores, axis=-1), hidden)
