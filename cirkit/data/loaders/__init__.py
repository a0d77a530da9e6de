"""Loaders for the official benchmark layouts, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DataError
from ..model import Split
from . import circo, cirr, fashioniq, genecis, karpathy, visdial

__all__ = ["BENCHMARKS", "load_split", "annotation_files", "default_splits"]

# name -> (loader, annotation-file finder, options the loader accepts besides root)
BENCHMARKS: dict[str, tuple[Callable[..., Split], Callable[..., list[str]], tuple[str, ...]]] = {
    "cirr": (cirr.load, cirr.annotation_files, ("split", "images_root")),
    "circo": (circo.load, circo.annotation_files, ("split", "require_gallery", "images_root")),
    "fashioniq": (fashioniq.load, fashioniq.annotation_files, ("split", "category", "join", "strip_captions", "image_ext", "images_dir")),
    "genecis": (genecis.load, genecis.annotation_files, ("task", "coco_dir", "vg_dir")),
    "flickr30k": (lambda root, **kw: karpathy.load(root, "flickr30k", **kw),
                  lambda root, **kw: karpathy.annotation_files(root, "flickr30k"), ("split", "images_dir")),
    "mscoco": (lambda root, **kw: karpathy.load(root, "mscoco", **kw),
               lambda root, **kw: karpathy.annotation_files(root, "mscoco"), ("split", "images_dir")),
    "builtin_t2i": (lambda root, **kw: karpathy.load(root, "builtin", **kw),
                    lambda root, **kw: karpathy.annotation_files(root, "builtin"), ("split", "images_dir")),
    "visdial": (visdial.load, lambda root, **kw: visdial.annotation_files(root), ("images_root",)),
}


def default_splits(name: str) -> list[dict[str, Any]]:
    """The evaluation splits ``cirkit data check`` looks at when none is named."""
    return {
        "cirr": [{"split": s} for s in ("val", "test1")],
        "circo": [{"split": s} for s in ("val", "test")],
        "fashioniq": [{"split": s, "category": c} for s in ("val", "test") for c in fashioniq.CATEGORIES],
        "genecis": [{"task": t} for t in genecis.TASKS],
    }.get(name, [{}])


def _check(name: str, options: dict[str, Any]) -> tuple:
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    entry = BENCHMARKS[name]
    unknown = set(options) - set(entry[2])
    if unknown:
        raise DataError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}; accepted: {', '.join(entry[2])}")
    return entry


def load_split(name: str, root: str, **options: Any) -> Split:
    return _check(name, options)[0](root, **options)


def annotation_files(name: str, root: str, **options: Any) -> list[str]:
    finder = _check(name, options)[1]
    relevant = {k: v for k, v in options.items() if k in ("split", "category", "task")}
    return finder(root, **relevant)
