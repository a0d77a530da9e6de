"""Symmetric InfoNCE against a plain NumPy reading of its definition."""

from __future__ import annotations

import numpy as np

from cirkit.training import info_nce


def reference(q, t, log_scale, hard=None):
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def xent(logits):  # mean cross-entropy with the diagonal as the labels
        logits = logits - logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(logp[:, : len(logp)]))

    scale = np.exp(min(log_scale, np.log(100.0)))
    logits = scale * unit(q) @ unit(t).T
    forward = logits if hard is None else np.concatenate([logits, scale * unit(q) @ unit(hard).T], axis=1)
    return (xent(forward) + xent(logits.T)) / 2


def test_info_nce_matches_its_definition_with_and_without_hard_negatives():
    rng = np.random.default_rng(0)
    q, t, hard = (rng.standard_normal((6, 5)).astype(np.float32) for _ in range(3))
    for log_scale in (np.log(3.0), np.log(1 / 0.07)):
        ls = np.float32(log_scale)
        assert abs(float(info_nce(q, t, ls)) - reference(q, t, log_scale)) < 1e-5
        assert abs(float(info_nce(q, t, ls, hard_negatives=hard)) - reference(q, t, log_scale, hard)) < 1e-5
    assert float(info_nce(q, t, np.float32(0.5), hard)) > float(info_nce(q, t, np.float32(0.5)))


def test_temperature_is_clamped_at_one_hundredth():
    rng = np.random.default_rng(1)
    q, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert float(info_nce(q, t, np.float32(9.0))) == float(info_nce(q, t, np.float32(np.log(100.0))))
