"""The ranking artifact shared by retrieval and evaluation."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..engine import artifact_type

__all__ = ["Ranking"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class Ranking:
    """Each query's best gallery indices (``-1`` pads queries with fewer than k candidates) and scores."""

    query_ids: tuple[str, ...]
    gallery_ids: tuple[str, ...]
    indices: np.ndarray
    scores: np.ndarray

    def ranked_ids(self, q: int, k: int | None = None) -> list[str]:
        row = self.indices[q] if k is None else self.indices[q, :k]
        return [self.gallery_ids[i] for i in row if i >= 0]

    def all_ranked_ids(self, k: int | None = None) -> list[list[str]]:
        return [self.ranked_ids(q, k) for q in range(len(self.query_ids))]

    def as_dict(self, k: int | None = None) -> dict[str, list[str]]:
        return dict(zip(self.query_ids, self.all_ranked_ids(k)))
