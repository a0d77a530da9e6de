"""Exact top-k by cosine similarity, chunked over queries and gallery so memory stays bounded.

Peak extra memory is about ``query_batch x (chunk_size + k)`` scores, whatever the gallery size: a 1M x 512
float32 gallery (2 GiB itself) is searched with a few tens of MiB on top. Per-query exclusions (the
reference image) and per-query candidate subsets (CIRR img_set, GeneCIS galleries) are applied inside
the search, so they never change what the other queries see.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["normalise", "exact_topk", "rank_within"]


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def exact_topk(
    queries: np.ndarray, gallery: np.ndarray, k: int, *, exclude: Sequence[int] | None = None,
    chunk_size: int = 65536, query_batch: int = 256, normalised: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the ``k`` best gallery rows for every query, best first.

    ``exclude[i]`` (a gallery index, or -1) is never returned for query ``i``. Ties break toward the
    lower gallery index, so results do not depend on chunking.
    """
    n_q, n_g = len(queries), len(gallery)
    k = min(k, n_g)
    out_i = np.empty((n_q, k), np.int64)
    out_s = np.empty((n_q, k), np.float32)
    excl = np.full(n_q, -1, np.int64) if exclude is None else np.asarray(exclude, np.int64)
    for q0 in range(0, n_q, query_batch):
        q = queries[q0 : q0 + query_batch]
        q = np.asarray(q, np.float32) if normalised else normalise(q)
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_i = np.zeros((len(q), 0), np.int64)
        for g0 in range(0, n_g, chunk_size):
            g = gallery[g0 : g0 + chunk_size]
            g = np.asarray(g, np.float32) if normalised else normalise(g)
            s = q @ g.T
            local = excl[q0 : q0 + len(q)] - g0
            rows = np.nonzero((local >= 0) & (local < len(g)))[0]
            s[rows, local[rows]] = -np.inf
            idx = np.broadcast_to(np.arange(g0, g0 + len(g)), s.shape)
            best_s, best_i = _merge(best_s, best_i, s, idx, k)
        out_i[q0 : q0 + len(q)] = best_i
        out_s[q0 : q0 + len(q)] = best_s
    return out_i, out_s


def _merge(s1, i1, s2, i2, k):
    s = np.concatenate([s1, s2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    if s.shape[1] > k:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        s, i = np.take_along_axis(s, part, 1), np.take_along_axis(i, part, 1)
    order = np.lexsort((i, -s), axis=1)  # score descending, then index ascending
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def rank_within(queries: np.ndarray, gallery: np.ndarray, candidates: Sequence[Sequence[int]], *,
                k: int | None = None, exclude: Sequence[int] | None = None) -> list[list[int]]:
    """Rank each query's own candidates (gallery indices) by cosine, best first, ties to the lower index.

    This is CIRR's subset protocol and GeneCIS's per-query gallery: only the candidates are scored.
    """
    q = normalise(queries)
    ranked = []
    for i, cands in enumerate(candidates):
        cands = np.asarray([c for c in cands if exclude is None or c != exclude[i]], np.int64)
        if len(cands) == 0:
            ranked.append([])
            continue
        s = normalise(gallery[cands]) @ q[i]
        order = np.lexsort((cands, -s))
        ranked.append(cands[order][:k].tolist())
    return ranked
