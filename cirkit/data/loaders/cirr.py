"""CIRR (Liu et al., ICCV 2021): rc2 captions and image splits; train, val and test1; six-image subsets."""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json, read_json_list
from ..model import ComposedQuery, Gallery, ImageRef, Split, Truth

SPLITS = ("train", "val", "test1")


def annotation_files(root: str, split: str) -> list[str]:
    return [
        find_file(root, f"captions/cap.rc2.{split}.json", f"cap.rc2.{split}.json"),
        find_file(root, f"image_splits/split.rc2.{split}.json", f"split.rc2.{split}.json"),
    ]


def load(root: str, split: str = "val", images_root: str | None = None) -> Split:
    if split not in SPLITS:
        raise DataError(f"CIRR has splits {', '.join(SPLITS)}, not {split!r}")
    cap_file, split_file = annotation_files(root, split)
    names = read_json(split_file)
    if not isinstance(names, dict):
        raise DataError(f"{split_file}: expected an object mapping image names to paths, found {type(names).__name__}")
    base = os.path.join(root, images_root) if images_root else root
    images = []
    for name, rel in names.items():
        if not isinstance(rel, str):
            raise DataError(f"{split_file}: image {name!r}: expected a relative path (str), found {type(rel).__name__}")
        images.append(ImageRef(name, os.path.normpath(os.path.join(base, rel))))
    known = set(names)
    entries = read_json_list(cap_file, "queries")
    queries, truths = [], []
    for i, e in enumerate(entries):
        where = f"entry {i}"
        pairid = field(e, "pairid", int, file=cap_file, where=where)
        reference = field(e, "reference", str, file=cap_file, where=where)
        caption = field(e, "caption", str, file=cap_file, where=where)
        img_set = field(e, "img_set", dict, file=cap_file, where=where)
        members = field(img_set, "members", list, file=cap_file, where=f"{where} img_set")
        target = field(e, "target_hard", str, file=cap_file, where=where, optional=split == "test1")
        for name in (reference, target, *members):
            if name is not None and name not in known:
                raise DataError(f"{cap_file}: {where}: image {name!r} is not in {split_file}")
        queries.append(ComposedQuery(str(pairid), reference, caption))
        truths.append(Truth(target=target, subset=tuple(members)))
    return Split("cirr", split, Gallery(f"cirr-{split}", tuple(images)), tuple(queries), tuple(truths))
