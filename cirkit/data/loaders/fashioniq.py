"""FashionIQ (Wu et al., CVPR 2021): dress, shirt and toptee; val and test; one gallery per category.

A query's text joins its two captions; the join is a template (``"{c0} and {c1}"`` by default, as the
CIR papers use on val) and is recorded with the run like any other config field.
"""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json, read_json_list
from ..model import ComposedQuery, Gallery, ImageRef, Split, Truth

CATEGORIES = ("dress", "shirt", "toptee")
SPLITS = ("train", "val", "test")


def annotation_files(root: str, split: str, category: str) -> list[str]:
    return [
        find_file(root, f"captions/cap.{category}.{split}.json", f"cap.{category}.{split}.json"),
        find_file(root, f"image_splits/split.{category}.{split}.json", f"split.{category}.{split}.json"),
    ]


def join_captions(captions: list[str], template: str, strip: bool) -> str:
    c0, c1 = captions
    if strip:
        c0, c1 = c0.strip(" .?,"), c1.strip(" .?,")
    return template.format(c0=c0, c1=c1)


def load(root: str, split: str = "val", category: str = "dress", join: str = "{c0} and {c1}",
         strip_captions: bool = False, image_ext: str = "png", images_dir: str = "images") -> Split:
    if category not in CATEGORIES:
        raise DataError(f"FashionIQ has categories {', '.join(CATEGORIES)}, not {category!r}")
    if split not in SPLITS:
        raise DataError(f"FashionIQ has splits {', '.join(SPLITS)}, not {split!r}")
    cap_file, split_file = annotation_files(root, split, category)
    names = read_json(split_file)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{split_file}: expected a list of image names (str)")
    folder = os.path.join(root, images_dir)
    images = tuple(ImageRef(n, os.path.join(folder, f"{n}.{image_ext}")) for n in names)
    known = set(names)
    entries = read_json_list(cap_file, "queries")
    queries, truths = [], []
    for i, e in enumerate(entries):
        where = f"entry {i}"
        candidate = field(e, "candidate", str, file=cap_file, where=where)
        captions = field(e, "captions", list, file=cap_file, where=where)
        if len(captions) != 2 or not all(isinstance(c, str) for c in captions):
            raise DataError(f"{cap_file}: {where}: field 'captions': expected two strings, found {captions!r}"[:300])
        target = field(e, "target", str, file=cap_file, where=where, optional=split == "test")
        for name in (candidate, target):
            if name is not None and name not in known:
                raise DataError(f"{cap_file}: {where}: image {name!r} is not in {split_file}")
        queries.append(ComposedQuery(f"{category}-{i}", candidate, join_captions(captions, join, strip_captions)))
        truths.append(Truth(target=target, category=category))
    return Split(f"fashioniq-{category}", split, Gallery(f"fashioniq-{category}-{split}", images), tuple(queries),
                 tuple(truths) if split != "test" else None)
