"""CIR-CoT's chunked next-token loss through a frozen head equals the plain log-softmax loss, value and gradient,
however the positions fall into chunks (chunks with no weighted position are skipped)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cirkit.methods.cir_cot import token_loss


def plain(hidden, head, targets, weights):
    logp = jax.nn.log_softmax(hidden @ head, axis=-1)
    return -(jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * weights).sum()


@pytest.mark.parametrize("chunk", [4, 7, 512])
def test_value_and_gradient_equal_the_plain_loss(monkeypatch, chunk):
    monkeypatch.setattr(token_loss, "CHUNK", chunk)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 9, 8)).astype(np.float32)
    head = rng.standard_normal((8, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (3, 9)).astype(np.int32)
    weights = np.zeros((3, 9), np.float32)
    weights[0, 6:], weights[1, 2:], weights[2, 8:] = 1.0, 0.5, 2.0  # left-padded rows of different lengths
    want, want_grad = jax.value_and_grad(plain)(hidden, head, targets, weights)
    got, got_grad = jax.value_and_grad(token_loss.frozen_head_nll)(hidden, head, targets, weights)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_grad), np.asarray(want_grad), rtol=1e-4, atol=1e-6)
    assert float(np.abs(np.asarray(got_grad)[0, :6]).max()) == 0.0  # unweighted positions get no gradient
    head_grad = jax.grad(lambda h: token_loss.frozen_head_nll(hidden, h, targets, weights))(head)
    assert float(np.abs(np.asarray(head_grad)).max()) == 0.0  # the head is frozen
