"""Composed training triplets as arrays: frozen vision states of every image a split's queries and targets
use (computed once), and per triplet the reference row, the target row and the edit text."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data.errors import DataError
from ..data.model import Split
from .vision import VisionTower

__all__ = ["Triplets", "triplets_of"]


@dataclasses.dataclass(frozen=True)
class Triplets:
    states: np.ndarray  # [images, tokens, dim] float32
    reference: np.ndarray  # [n] row of each query's reference image
    target: np.ndarray  # [n] row of its target image
    texts: tuple[str, ...]  # [n] edit texts
    query_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)


def triplets_of(split: Split, tower: VisionTower) -> Triplets:
    """The split's (reference, text, target) triplets; a split without ground truth cannot train."""
    if split.truths is None:
        raise DataError(f"{split.benchmark} {split.split}: no ground truth, so no targets to train on")
    paths = {im.id: im.path for im in split.gallery.images}
    needed = sorted({q.reference for q in split.queries} | {t.target for t in split.truths})
    missing = [i for i in needed if i not in paths]
    if missing:
        raise DataError(f"{split.benchmark} {split.split}: image {missing[0]!r} is not in the split's gallery")
    row = {image: i for i, image in enumerate(needed)}
    return Triplets(tower.states_of_files([paths[i] for i in needed]),
                    np.asarray([row[q.reference] for q in split.queries]),
                    np.asarray([row[t.target] for t in split.truths]),
                    tuple(q.text for q in split.queries), tuple(q.id for q in split.queries))
