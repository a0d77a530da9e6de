"""The next-token loss through a frozen output head, computed a few positions at a time.

Through the LLM's head every position's logits span the whole vocabulary (49,152 for SmolLM2): for a batch
of 32 chains of thought of 145 tokens that is 0.9 GB of float32 logits, plus as much again for their
log-softmax and for their gradient, which is where CIR-CoT's training memory went. The head is frozen, so the
only gradient needed is the one with respect to the hidden states, ``(softmax - one_hot) @ head.T``; it is
computed in the forward pass, chunk by chunk, and the backward pass only scales it. The two vocabulary-wide
matrix products per position are those of plain autodiff, but only for the positions with a weight (the
padding of a left-padded window has none), and the ``[batch, time, vocab]`` arrays and the passes over them
are gone (at most ``[chunk, vocab]`` exists at a time).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["frozen_head_nll"]

CHUNK = 512  # positions per chunk: [512, 49152] float32 logits are 100 MB


def _value_and_grad(hidden, head, targets, weights, chunk: int):
    """The loss and its gradient w.r.t. ``hidden``. Positions are flattened and the weighted ones (the chain of
    thought's, about 60 % of a left-padded window) moved to the front, so chunks without any are skipped."""
    b, t, d = hidden.shape
    n = b * t
    weights = weights.reshape(n).astype(jnp.float32)
    order = jnp.argsort(weights == 0, stable=True)
    count = -(-n // chunk)
    pad = count * chunk - n

    def sorted_chunks(x, fill=0):
        x = jnp.pad(x.reshape(n, *x.shape[2:])[order], [(0, pad)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)
        return x.reshape(count, chunk, *x.shape[1:])

    def compute(h, y, w):
        logits = (h @ head).astype(jnp.float32)
        lse = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
        probs = jnp.exp(logits - lse[:, None]) - jax.nn.one_hot(y, logits.shape[-1], dtype=jnp.float32)
        grad = (probs * w[:, None]) @ head.T.astype(jnp.float32)
        return ((lse - picked) * w).sum(), grad.astype(h.dtype)

    def one(total, xs):
        h, y, w = xs
        skip = lambda h, y, w: (jnp.float32(0.0), jnp.zeros_like(h))  # noqa: E731
        value, grad = jax.lax.cond(jnp.any(w != 0), compute, skip, h, y, w)
        return total + value, grad

    xs = (sorted_chunks(hidden), sorted_chunks(targets), sorted_chunks(weights.reshape(b, t)))
    total, grads = jax.lax.scan(one, jnp.float32(0.0), xs)
    grads = jnp.zeros((n, d), hidden.dtype).at[order].set(grads.reshape(count * chunk, d)[:n])
    return total, grads.reshape(b, t, d)


@jax.custom_vjp
def _nll(hidden, head, targets, weights):
    return _value_and_grad(hidden, head, targets, weights, CHUNK)[0]


def _forward(hidden, head, targets, weights):
    total, grads = _value_and_grad(hidden, head, targets, weights, CHUNK)
    return total, (grads, head, targets, weights)


def _backward(residual, cotangent):
    grads, head, targets, weights = residual
    # the head, the targets and the weights are not trained: zero cotangents (the caller stops their gradients)
    return (cotangent * grads, jnp.zeros_like(head), jnp.zeros(targets.shape, jax.dtypes.float0),
            jnp.zeros_like(weights))


_nll.defvjp(_forward, _backward)


def frozen_head_nll(hidden, head, targets, weights):
    """``sum(weights * -log softmax(hidden @ head)[targets])`` over ``[batch, time]`` positions, differentiable
    in ``hidden`` only (``head`` ``[hidden, vocab]`` is frozen)."""
    return _nll(hidden, jax.lax.stop_gradient(head), targets, jax.lax.stop_gradient(weights))
