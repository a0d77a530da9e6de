"""``cirkit data check``: counts, missing and undecodable images of a benchmark split."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

from .model import ImageRef, Split

__all__ = ["CheckReport", "check_split"]


@dataclasses.dataclass
class CheckReport:
    benchmark: str
    split: str
    queries: int
    images: int
    with_truth: int
    missing: list[str]
    undecodable: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.undecodable


def _decode(image: ImageRef, full: bool) -> str | None:
    from PIL import Image

    try:
        with Image.open(image.path) as im:
            if full:
                im.load()
            else:
                im.verify()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def check_split(split: Split, *, decode: bool = True, full_decode: bool = False, workers: int = 8) -> CheckReport:
    images = split.gallery.images
    present = [im for im in images if os.path.isfile(im.path)]
    missing = [im.path for im in images if not os.path.isfile(im.path)]
    undecodable: list[tuple[str, str]] = []
    if decode and present:
        with ThreadPoolExecutor(workers) as pool:
            for im, problem in zip(present, pool.map(lambda i: _decode(i, full_decode), present)):
                if problem:
                    undecodable.append((im.path, problem))
    truths = sum(1 for t in split.truths or () if t.valid())
    return CheckReport(split.benchmark, split.split, len(split.queries), len(images), truths, missing, undecodable)
