"""LDRE's divergent caption ensemble: one query vector from the embeddings of every (caption, rewrite) member.

``mean``: the normalised mean of the members' unit vectors. ``weighted`` (LDRE's semantic relevance weights, as
the released code computes them): for each member, how far its rewrite *lowers* gallery similarities compared
with its caption (the drops ``max(0, cos(caption, x) - cos(rewrite, x))``, the ``top_k`` largest per query,
summed); the weights are ``softmax(drop / max(drop) / temperature)`` over members, one weight per member for the
whole split (``scope = "split"``, as released) or per query (``scope = "query"``). SEIZE's semantic editing
increment adds ``increment * (rewrite ensemble - caption ensemble)`` to the query, which ranks exactly as its
score ``s_after + increment * (s_after - s_before)`` because cosine scores are linear in the query.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ... import config_checks as checks
from ...engine import stage

__all__ = ["EnsembleConfig", "ensemble_queries", "member_weights"]

CHUNK = 256  # queries per block when comparing with the gallery (bounded memory on large galleries)


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    kind: Literal["mean", "weighted"] = "weighted"  # LDRE: weighted; "mean" is the plain ensemble
    temperature: float = 0.04  # weighted: the softmax temperature (released default 0.04)
    top_k: int = 5  # weighted: the largest similarity drops summed per query (released default 5; 5-50 work)
    scope: Literal["split", "query"] = "split"  # weighted: one weight per member for the split (released) or per query
    increment: float = 0.0  # SEIZE's semantic editing increment (momentum factor); 0 = LDRE

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "weighted"):
            checks.fail(self, "kind", "'mean' or 'weighted'", self.kind)
        if self.scope not in ("split", "query"):
            checks.fail(self, "scope", "'split' or 'query'", self.scope)
        checks.integers_at_least(self, 1, "top_k")
        if not self.temperature > 0:
            checks.fail(self, "temperature", "a number > 0", self.temperature)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _drops(config: EnsembleConfig, rewrite: np.ndarray, caption: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Per query: the sum of the ``top_k`` largest drops in gallery similarity from caption to rewrite."""
    k = min(config.top_k, gallery.shape[0])
    out = np.zeros(len(rewrite), np.float64)
    for a in range(0, len(rewrite), CHUNK):
        drop = np.maximum(caption[a:a + CHUNK] @ gallery.T - rewrite[a:a + CHUNK] @ gallery.T, 0.0)
        out[a:a + CHUNK] = np.sort(drop, axis=1)[:, -k:].sum(axis=1)
    return out


def member_weights(config: EnsembleConfig, rewrites: list[np.ndarray], captions: list[np.ndarray],
                   gallery: np.ndarray) -> np.ndarray:
    """(members, queries) weights summing to 1 over members."""
    n, q = len(rewrites), len(rewrites[0])
    if config.kind == "mean":
        return np.full((n, q), 1.0 / n)
    drops = np.stack([_drops(config, r, c, gallery) for r, c in zip(rewrites, captions, strict=True)])
    if config.scope == "split":
        drops = np.repeat(drops.sum(axis=1, keepdims=True), q, axis=1)
    top = drops.max(axis=0, keepdims=True)
    logits = np.where(top > 0, drops / np.where(top > 0, top, 1.0), 0.0) / config.temperature
    logits -= logits.max(axis=0, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=0, keepdims=True)


@stage(version=1, helpers=[_unit, _drops, member_weights])
def ensemble_queries(config: EnsembleConfig, rewrites: tuple, captions: tuple, gallery: np.ndarray) -> np.ndarray:
    """One query vector per query from N x M member embeddings (``rewrites[m]`` and its caption's ``captions[m]``,
    each (queries, dim)); ``gallery`` is used by the weighted ensemble only."""
    if not rewrites or len(rewrites) != len(captions):
        raise ValueError(f"{len(rewrites)} rewrite embeddings for {len(captions)} caption embeddings (need >= 1 each)")
    after = [_unit(r) for r in rewrites]
    before = [_unit(c) for c in captions]
    w = member_weights(config, after, before, _unit(gallery))
    query = sum(wm[:, None] * a for wm, a in zip(w, after))
    if config.increment:
        query = query + config.increment * (query - sum(wm[:, None] * b for wm, b in zip(w, before)))
    return _unit(query).astype(np.float32)
