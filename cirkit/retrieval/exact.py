"""Exact top-k by cosine similarity: a blocked matmul feeding a running top-k, memory bounded.

The gallery is read in blocks of ``chunk_size`` rows (each normalised once) and scored against batches of
``query_batch`` queries with one matmul (a jitted XLA matmul fused with the exclusion and the threshold test
for large searches, numpy's BLAS for small ones); only scores that beat a query's current pool minimum
survive, and survivors are merged into a running top-(2k + 16) pool (a partition, never a full sort of a
block). Peak extra memory is about ``query_batch x chunk_size x 13`` bytes (scores, the pass mask, partition
indices), 200 MiB at the defaults, whatever the gallery size.

A matmul score's last bits depend on the matrix shapes, so the pool is re-scored canonically (float64 per
pair, rounded to float32) and the order is total and chunk-independent: canonical score descending, then
gallery index ascending, at every position including the k-th. A rounding bound certifies that the pool
held the exact top-k; a query with too many near-ties at the boundary is re-scored canonically in full.

Per-query exclusions (the reference image) are applied inside the search and are never returned: when
fewer than k rows remain (k >= gallery size), the row is padded with index -1 and score -inf, which
:class:`~cirkit.retrieval.ranking.Ranking` drops and the metrics never count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["normalise", "exact_topk", "rank_within"]


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def exact_topk(
    queries: np.ndarray, gallery: np.ndarray, k: int, *, exclude: Sequence[int] | None = None,
    chunk_size: int = 16384, query_batch: int = 1024, normalised: bool = False, matmul: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(Q, min(k, G))`` and cosine scores of the best gallery rows per query, best first.

    ``exclude[i]`` (a gallery index, or -1) is never returned for query ``i``; its slot at the end is -1.
    ``matmul``: ``"jax"`` (a jitted XLA matmul), ``"numpy"`` (BLAS) or ``"auto"`` (jax for large searches);
    the result is the same.
    """
    n_q, n_g = len(queries), len(gallery)
    k = min(k, n_g)
    if k == 0 or n_q == 0:
        return np.full((n_q, k), -1, np.int64), np.full((n_q, k), -np.inf, np.float32)
    pool = min(n_g, 2 * k + 16)
    excl = np.full(n_q, -1, np.int64) if exclude is None else np.asarray(exclude, np.int64)
    q_all = np.asarray(queries, np.float32) if normalised else normalise(queries)
    fast_s, fast_i, g_norm = _blocked_search(q_all, gallery, pool, excl, chunk_size, query_batch, normalised, matmul)
    cand_i = np.where(np.isfinite(fast_s), fast_i, -1)
    best_s, best_i = _canonical_top(q_all, gallery, cand_i, excl, k, normalised)
    # Certify: a row outside the pool has a fast score <= the pool's last one, so its canonical score is at
    # most that plus the matmul's rounding bound; if the k-th canonical score is above that, the pool held
    # the exact top-k. Otherwise (many near-ties at the boundary) score that query canonically in full.
    bound = (q_all.shape[1] + 4) * 2.0**-24 * np.linalg.norm(q_all, axis=1) * g_norm
    last = fast_s[:, -1]
    unsure = np.nonzero(np.isfinite(last) & ~(best_s[:, -1] > last + bound))[0]
    for i in unsure:
        best_s[i], best_i[i] = _full_canonical(q_all[i], gallery, excl[i], k, chunk_size, normalised)
    best_i[~np.isfinite(best_s)] = -1
    return best_i, best_s


def _blocked_search(q_all, gallery, k, excl, chunk_size, query_batch, normalised, matmul):
    """The top-k by matmul scores (fast, but a score's last bits may depend on the blocking), and the largest
    gallery row norm. ``matmul="jax"``: a jitted XLA matmul fused with the exclusion and the threshold test
    (faster than numpy's BLAS on the development CPU); ``"numpy"``: BLAS through numpy."""
    n_q, n_g = len(q_all), len(gallery)
    best_s = np.full((n_q, k), -np.inf, np.float32)
    best_i = np.full((n_q, k), n_g, np.int64)  # n_g sorts after every real index
    g_norm = 0.0
    if matmul == "auto":
        matmul = "jax" if n_q * n_g >= 2**24 else "numpy"  # below that, compiling costs more than it saves
    if matmul == "jax":
        import jax

        score, place = _jax_block_scores(), jax.device_put
    else:
        score, place = _numpy_block_scores, np.asarray
    for g0 in range(0, n_g, chunk_size):
        g = np.asarray(gallery[g0 : g0 + chunk_size], np.float32)
        g = g if normalised else normalise(g)
        g_norm = max(g_norm, float(np.sqrt(np.einsum("ij,ij->i", g, g).max())))
        n_block, g = len(g), place(g)
        for q0 in range(0, n_q, query_batch):
            rows = slice(q0, min(q0 + query_batch, n_q))
            local = excl[rows] - g0
            local = np.where((local >= 0) & (local < n_block), local, n_block).astype(np.int32)
            s, passed, counts = (np.asarray(x) for x in score(q_all[rows], g, local, best_s[rows, -1]))
            best_s[rows], best_i[rows] = _update(best_s[rows], best_i[rows], s, g0, k, passed, counts)
    return best_s, best_i, g_norm * (1 + 1e-6)


def _numpy_block_scores(q, g, local, threshold):
    """Scores of a query batch against a block (``local``: each query's excluded column, or ``len(g)``),
    which entries beat the query's threshold, and how many per query."""
    s = q @ g.T
    hit = np.nonzero(local < len(g))[0]
    s[hit, local[hit]] = -np.inf
    passed = s > threshold[:, None]
    return s, passed, np.count_nonzero(passed, axis=1)


@functools.cache
def _jax_block_scores():
    import jax
    import jax.numpy as jnp

    def scores(q, g, local, threshold):
        s = (q @ g.T).at[jnp.arange(q.shape[0]), local].set(-jnp.inf, mode="drop")
        passed = s > threshold[:, None]
        return s, passed, passed.sum(axis=1)

    return jax.jit(scores)


def _canonical_scores(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Cosine scores computed the same way whatever the blocking: float64 products summed per pair, rounded
    to float32 (``q``: ``(..., D)`` broadcast against ``g``: ``(..., D)``)."""
    return (q.astype(np.float64) * g.astype(np.float64)).sum(axis=-1).astype(np.float32)


def _canonical_top(q_all, gallery, cand_i, excl, k, normalised, batch=128):
    """The pool re-scored canonically and cut to the top-k (score descending, then index ascending)."""
    s = np.empty(cand_i.shape, np.float32)
    for q0 in range(0, len(cand_i), batch):
        ci = cand_i[q0 : q0 + batch]
        rows = np.asarray(gallery[np.maximum(ci, 0).ravel()], np.float32)
        rows = (rows if normalised else normalise(rows)).reshape(*ci.shape, -1)
        s[q0 : q0 + batch] = _canonical_scores(q_all[q0 : q0 + batch, None, :], rows)
    s[(cand_i < 0) | (cand_i == excl[:, None])] = -np.inf
    return _sorted_top(s, np.where(cand_i < 0, len(gallery), cand_i), k)


def _full_canonical(q, gallery, excl, k, chunk_size, normalised):
    best_s = np.full((1, k), -np.inf, np.float32)
    best_i = np.full((1, k), len(gallery), np.int64)
    for g0 in range(0, len(gallery), chunk_size):
        g = np.asarray(gallery[g0 : g0 + chunk_size], np.float32)
        s = _canonical_scores(q[None, :], g if normalised else normalise(g))[None, :]
        if g0 <= excl < g0 + len(g):
            s[0, excl - g0] = -np.inf
        best_s, best_i = _update(best_s, best_i, s, g0, k, exact_ties=True)
    return best_s[0], best_i[0]


def _update(best_s: np.ndarray, best_i: np.ndarray, s: np.ndarray, g0: int, k: int, passed: np.ndarray | None = None,
            counts: np.ndarray | None = None, exact_ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Merge one block of scores (gallery rows ``g0...``, all after the rows seen so far) into the top-k.

    Only entries that beat the current k-th score strictly can enter (on a tie the earlier, lower index
    wins), so one comparison pass filters the block; a block with many survivors is first cut to its own
    top-k with a partition (linear, no sort), which resolves ties at its k-th value arbitrarily unless
    ``exact_ties`` (then toward the lower index)."""
    if passed is None:
        passed = s > best_s[:, -1:]
        counts = np.count_nonzero(passed, axis=1)
    width = int(counts.max())
    if width == 0:
        return best_s, best_i
    if width > 4 * k:
        cols = _block_top_ties(s, k) if exact_ties else np.argpartition(s, s.shape[1] - k, axis=1)[:, -k:]
        cand_s, cand_i = np.take_along_axis(s, cols, 1), cols + g0
    else:
        r, c = np.nonzero(passed)
        slot = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
        cand_s = np.full((len(s), width), -np.inf, np.float32)
        cand_i = np.full((len(s), width), np.iinfo(np.int64).max, np.int64)
        cand_s[r, slot] = s[r, c]
        cand_i[r, slot] = c + g0
    return _sorted_top(np.concatenate([best_s, cand_s], 1), np.concatenate([best_i, cand_i], 1), k)


def _block_top_ties(s: np.ndarray, k: int) -> np.ndarray:
    """Columns of each row's k best entries, ties at the k-th value resolved toward the lower index."""
    n = s.shape[1]
    kth = np.partition(s, n - k, axis=1)[:, n - k : n - k + 1]
    above = s > kth
    tied = s == kth
    room = k - np.count_nonzero(above, axis=1)[:, None]
    keep = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
    return np.nonzero(keep)[1].reshape(len(s), k)  # exactly k per row, in column order


def _sorted_top(s: np.ndarray, i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((i, -s), axis=1)[:, :k]  # score descending, then index ascending
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
