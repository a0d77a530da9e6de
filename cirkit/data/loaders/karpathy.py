"""Flickr30K 1K and MSCOCO 5K test (Karpathy splits): every caption of a test image is a text query."""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json
from ..model import Gallery, ImageRef, Split, TextQuery, Truth

FILES = {"flickr30k": "dataset_flickr30k.json", "mscoco": "dataset_coco.json", "builtin": "dataset_builtin.json"}
IMAGE_DIRS = {"flickr30k": "flickr30k-images", "mscoco": "", "builtin": "images"}


def annotation_files(root: str, dataset: str) -> list[str]:
    return [find_file(root, FILES[dataset], f"annotations/{FILES[dataset]}")]


def load(root: str, dataset: str = "flickr30k", split: str = "test", images_dir: str | None = None) -> Split:
    if dataset not in FILES:
        raise DataError(f"Karpathy splits exist for {', '.join(FILES)}, not {dataset!r}")
    (ann_file,) = annotation_files(root, dataset)
    data = read_json(ann_file)
    entries = field(data, "images", list, file=ann_file, where="top level")
    base = os.path.join(root, IMAGE_DIRS[dataset] if images_dir is None else images_dir)
    images, queries, truths = [], [], []
    for i, e in enumerate(entries):
        where = f"images[{i}]"
        if field(e, "split", str, file=ann_file, where=where) != split:
            continue
        filename = field(e, "filename", str, file=ann_file, where=where)
        filepath = field(e, "filepath", str, file=ann_file, where=where, optional=True) or ""
        images.append(ImageRef(filename, os.path.join(base, filepath, filename)))
        for j, sent in enumerate(field(e, "sentences", list, file=ann_file, where=where)):
            raw = field(sent, "raw", str, file=ann_file, where=f"{where} sentences[{j}]")
            sid = field(sent, "sentid", int, file=ann_file, where=f"{where} sentences[{j}]", optional=True)
            queries.append(TextQuery(str(sid if sid is not None else f"{filename}#{j}"), raw))
            truths.append(Truth(target=filename))
    if not images:
        raise DataError(f"{ann_file}: no images in split {split!r}")
    return Split(dataset, split, Gallery(f"{dataset}-{split}", tuple(images)), tuple(queries), tuple(truths))
