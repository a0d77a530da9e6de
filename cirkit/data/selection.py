"""Missing images: fail with the list (the default) or skip what they touch, always counted.

Real benchmarks lose images (FashionIQ: 74,381 of 77,684 are still downloadable). A split loaded with
content hashes marks a missing file with ``content == ""``; this stage either stops with the list or removes
the missing gallery images and every query whose reference, target, valid targets or candidates include one.
The counts are a separate artifact so that they can be reported next to the metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..engine import stage
from .errors import DataError
from .model import ComposedQuery, Gallery, Split

__all__ = ["MissingImagesConfig", "missing_images", "apply_image_policy", "selection_report"]

_LISTED = 10  # how many missing files an error message names


@dataclasses.dataclass(frozen=True)
class MissingImagesConfig:
    policy: Literal["fail", "skip"] = "fail"


def missing_images(split: Split) -> list[str]:
    """Paths of the gallery images whose file was absent when the split was loaded (in gallery order)."""
    return [im.path for im in split.gallery.images if not im.content]


def _query_images(split: Split, i: int) -> set[str]:
    q = split.queries[i]
    ids = {q.reference} if isinstance(q, ComposedQuery) else set()
    if split.truths is not None:
        t = split.truths[i]
        ids |= {x for x in (t.target, *t.targets, *t.subset) if x is not None}
    if split.query_galleries is not None:
        ids |= set(split.query_galleries[i])
    return ids


@stage(version=1, helpers=[missing_images, _query_images])
def apply_image_policy(config: MissingImagesConfig, split: Split) -> Split:
    """The split unchanged if every image exists; else an error listing them (``fail``) or the split without
    the missing gallery images and the queries that need one of them (``skip``)."""
    missing = missing_images(split)
    if not missing:
        return split
    if config.policy == "fail":
        listed = ", ".join(missing[:_LISTED]) + (f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else "")
        raise DataError(f"{split.benchmark} {split.split}: {len(missing)} of {len(split.gallery.images)} images are "
                        f"missing: {listed}. Set setup.data.missing_images = \"skip\" to skip the affected queries "
                        f"and gallery images (they are counted and reported with the metrics)")
    gone = {im.id for im in split.gallery.images if not im.content}
    keep = [i for i in range(len(split.queries)) if not (_query_images(split, i) & gone)]
    images = tuple(im for im in split.gallery.images if im.content)
    return dataclasses.replace(
        split, gallery=Gallery(split.gallery.name, images), queries=tuple(split.queries[i] for i in keep),
        truths=tuple(split.truths[i] for i in keep) if split.truths is not None else None,
        query_galleries=tuple(split.query_galleries[i] for i in keep) if split.query_galleries is not None else None)


@stage(version=1)
def selection_report(config: None, selected: Split, kept: Split) -> dict:
    """What the run evaluates and what missing images cost: query and gallery counts before and after."""
    return {"queries": len(kept.queries), "skipped queries": len(selected.queries) - len(kept.queries),
            "gallery images": len(kept.gallery.images),
            "skipped gallery images": len(selected.gallery.images) - len(kept.gallery.images)}
