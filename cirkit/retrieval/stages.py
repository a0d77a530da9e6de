"""Retrieval stages: score fusion, a cached ScaNN index, and top-k search under explicit protocol switches."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from .. import config_checks as checks
from ..data.model import ComposedQuery, Split
from ..engine import stage
from .exact import exact_topk, normalise, rank_within
from .ranking import Ranking
from .scann_index import ScannConfig, ScannIndex, build_scann, search_scann

__all__ = ["RetrievalConfig", "FusionConfig", "fused_queries", "fused_gallery", "fuse_queries", "fuse_gallery",
           "build_index", "retrieve"]


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """Top-k search and the protocol switches that change reported numbers."""

    k: int = 50
    backend: Literal["exact", "scann"] = "exact"
    exclude_reference: bool | None = True  # None: the benchmark's official value (pipelines resolve it)
    subset: bool | None = False  # rank within each query's candidates (CIRR img_set, GeneCIS); None: official
    leaves_to_search: int | None = None  # ScaNN search-time override
    # exact search returns the same ranking whatever the blocking, so these stay out of the key
    chunk_size: int = dataclasses.field(default=16384, metadata={"hash": False})
    query_batch: int = dataclasses.field(default=1024, metadata={"hash": False})

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "k", "chunk_size", "query_batch")
        if self.leaves_to_search is not None:
            checks.integers_at_least(self, 1, "leaves_to_search")


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """ImageScope's hybrid score: (1 - tau) * cos(description, image) + tau * cos(description, caption),
    averaged over a query's descriptions."""

    tau: float = 0.15

    def __post_init__(self) -> None:
        checks.number_between(self, "tau", 0.0, 1.0)


def fused_queries(descriptions: np.ndarray) -> np.ndarray:
    """``[mean_d d, mean_d d]`` over a query's unit description vectors (``(Q, n, D)`` or ``(Q, D)``)."""
    d = normalise(descriptions)
    q = d.mean(axis=1) if d.ndim == 3 else d
    return np.concatenate([q, q], axis=1)


def fused_gallery(tau: float, gallery_images: np.ndarray, gallery_captions: np.ndarray) -> np.ndarray:
    """``[(1 - tau) g, tau c]`` over unit image and caption vectors.

    With unit vectors, mean_d[(1-tau) d.g + tau d.c] = fused_queries . fused_gallery, so hybrid retrieval is
    one inner-product search (exact or ScaNN) over concatenated vectors. Normalising either side scales all
    of a query's scores by one constant, so rankings are unchanged.
    """
    return np.concatenate([(1 - tau) * normalise(gallery_images), tau * normalise(gallery_captions)], axis=1)


@stage(version=1, helpers=[fused_queries])
def fuse_queries(config: None, descriptions: np.ndarray) -> np.ndarray:
    """Query side of hybrid retrieval (independent of tau, so a tau sweep reuses it)."""
    return fused_queries(descriptions)


@stage(version=1, helpers=[fused_gallery])
def fuse_gallery(config: FusionConfig, gallery_images: np.ndarray, gallery_captions: np.ndarray) -> np.ndarray:
    return fused_gallery(config.tau, gallery_images, gallery_captions)


def _unit_rows(x: np.ndarray, block: int = 65536, tolerance: float = 1e-5) -> np.ndarray:
    """``x`` itself when it is float32 with unit rows already (stored embeddings usually are), else one
    normalised float32 copy made block by block (no second full-size temporary)."""
    if x.dtype == np.float32 and x.flags.c_contiguous and all(
            np.abs(np.einsum("ij,ij->i", x[i : i + block], x[i : i + block]) - 1).max(initial=0) <= tolerance
            for i in range(0, len(x), block)):
        return x
    out = np.array(x, dtype=np.float32, copy=True)
    for i in range(0, len(out), block):
        out[i : i + block] = normalise(out[i : i + block])
    return out


@stage(version=1, helpers=[_unit_rows])
def build_index(config: ScannConfig, gallery: np.ndarray) -> ScannIndex:
    """A ScaNN index over the normalised gallery (cached: reused by every query set and top-k)."""
    return build_scann(_unit_rows(gallery), config, k=10)



def _reference_rows(split: Split) -> np.ndarray:
    index = split.gallery.index()
    return np.array([index.get(q.reference, -1) if isinstance(q, ComposedQuery) else -1 for q in split.queries],
                    np.int64)


def _candidates(split: Split) -> list[list[int]]:
    index = split.gallery.index()
    if split.query_galleries is not None:
        lists = split.query_galleries
    elif split.truths is not None and all(t.subset for t in split.truths):
        lists = [t.subset for t in split.truths]
    else:
        raise ValueError(f"{split.benchmark} {split.split}: subset ranking needs per-query candidates, and it has none")
    return [[index[i] for i in ids] for ids in lists]


@stage(version=2, helpers=[_reference_rows, _candidates])  # 2: exact ties/chunking, -1 padding
def retrieve(config: RetrievalConfig, split: Split, queries: np.ndarray, gallery: np.ndarray,
             index: ScannIndex | None) -> Ranking:
    """Rank the gallery for every query of ``split`` (rows of ``queries`` in query order)."""
    if len(queries) != len(split.queries) or len(gallery) != len(split.gallery.images):
        raise ValueError(f"{len(queries)} query and {len(gallery)} gallery vectors for a split with "
                         f"{len(split.queries)} queries and {len(split.gallery.images)} images")
    exclude = _reference_rows(split) if config.exclude_reference else None
    if config.subset:
        ranked = rank_within(queries, gallery, _candidates(split), k=config.k, exclude=exclude)
        indices = np.full((len(ranked), config.k), -1, np.int64)
        for i, row in enumerate(ranked):
            indices[i, : len(row)] = row
        q, g = normalise(queries), normalise(gallery)
        scores = np.where(indices >= 0, np.einsum("qd,qkd->qk", q, g[np.maximum(indices, 0)]), -np.inf).astype(np.float32)
    elif config.backend == "scann":
        if index is None:
            raise ValueError("backend 'scann' needs an index input (the build_index stage)")
        indices, scores = search_scann(index, normalise(queries), config.k, leaves_to_search=config.leaves_to_search,
                                       exclude=exclude)
    else:
        indices, scores = exact_topk(queries, gallery, config.k, exclude=exclude, chunk_size=config.chunk_size,
                                     query_batch=config.query_batch)
    return Ranking(tuple(q.id for q in split.queries), split.gallery.ids(), indices, scores.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class SubsetOrderConfig:
    k: int = 3
    exclude_reference: bool = True

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "k")


@stage(version=1, helpers=[_reference_rows, _candidates])
def restrict_to_subset(config: SubsetOrderConfig, split: Split, ranking: Ranking) -> Ranking:
    """Each query's candidates (CIRR img_set) in the order a full ranking gives them (ImageScope's subset
    protocol after re-ranking); candidates the ranking does not reach follow in their listed order."""
    exclude = _reference_rows(split) if config.exclude_reference else None
    candidates = _candidates(split)
    indices = np.full((len(candidates), config.k), -1, np.int64)
    for q, cands in enumerate(candidates):
        allowed = [c for c in cands if exclude is None or c != exclude[q]]
        ranked = [int(i) for i in ranking.indices[q] if i in allowed]
        ordered = ranked + [c for c in allowed if c not in ranked]
        indices[q, : min(config.k, len(ordered))] = ordered[: config.k]
    scores = np.where(indices >= 0, 0.0, -np.inf).astype(np.float32)
    return Ranking(ranking.query_ids, ranking.gallery_ids, indices, scores)
