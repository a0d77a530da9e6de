"""Loading a benchmark split as a (volatile) stage, with image content hashes filled in."""

from __future__ import annotations

import dataclasses
import os

from ..engine import stage
from .filehash import FileDigests
from .loaders import load_split
from .model import Gallery, Split

__all__ = ["BenchmarkConfig", "load_benchmark"]


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Which benchmark split to read and the loader options that change queries (the folder is an input)."""

    name: str
    split: str | None = None
    category: str | None = None  # FashionIQ
    task: str | None = None  # GeneCIS
    join: str | None = None  # FashionIQ caption join template, "{c0} and {c1}" by default
    strip_captions: bool | None = None  # FashionIQ
    images_root: str | None = None  # image folder relative to the root (CIRR, CIRCO, VisDial)
    images_dir: str | None = None  # the same for FashionIQ, Flickr30K and MSCOCO
    hash_images: bool = True  # fill ImageRef.content so a replaced image invalidates its embeddings

    def loader_options(self) -> dict:
        skip = {"name", "hash_images"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip and getattr(self, f.name) is not None}


def with_content_hashes(split: Split, digests: FileDigests | None = None) -> Split:
    """The split with every existing gallery image's SHA-256 recorded (missing files stay "")."""
    digests = digests or FileDigests()
    images = split.gallery.images
    present = [im for im in images if os.path.isfile(im.path)]
    found = dict(zip((im.path for im in present), digests.digests([im.path for im in present])))
    hashed = tuple(dataclasses.replace(im, content=found.get(im.path, "")) for im in images)
    return dataclasses.replace(split, gallery=Gallery(split.gallery.name, hashed))


@stage(version=1, volatile=True)
def load_benchmark(config: BenchmarkConfig, root: str) -> Split:
    """Read a split from ``root`` in its official layout (re-read on every run, so edited files are noticed)."""
    split = load_split(config.name, root, **config.loader_options())
    return with_content_hashes(split) if config.hash_images else split
