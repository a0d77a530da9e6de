"""GeneCIS (Vaze et al., CVPR 2023): four tasks, each query with its own small gallery.

``{change,focus}_{attribute,object}.json``: entries with ``reference``, ``target``, ``gallery`` (a list)
and ``condition``. Object tasks name COCO val2017 images (``val_image_id``); attribute tasks name Visual
Genome instances (``image_id`` + ``instance_bbox`` [x, y, w, h]) that are cropped before encoding.
"""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json_list
from ..model import ComposedQuery, Gallery, ImageRef, Split, Truth

TASKS = ("change_attribute", "focus_attribute", "change_object", "focus_object")


def annotation_files(root: str, task: str) -> list[str]:
    return [find_file(root, f"genecis/{task}.json", f"{task}.json")]


def _image(entry: dict, *, file: str, where: str, coco_dir: str, vg_dir: str) -> ImageRef:
    if isinstance(entry, dict) and "val_image_id" in entry:
        i = field(entry, "val_image_id", int, file=file, where=where)
        return ImageRef(str(i), os.path.join(coco_dir, f"{i:012d}.jpg"))
    image_id = field(entry, "image_id", (int, str), file=file, where=where)
    box = field(entry, "instance_bbox", list, file=file, where=where)
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise DataError(f"{file}: {where}: field 'instance_bbox': expected [x, y, width, height], found {box!r}")
    box_t = tuple(float(v) for v in box)
    return ImageRef(f"{image_id}@{','.join(f'{v:g}' for v in box_t)}", os.path.join(vg_dir, f"{image_id}.jpg"), box=box_t)


def load(root: str, task: str = "change_object", coco_dir: str = "val2017", vg_dir: str = "VG_100K") -> Split:
    if task not in TASKS:
        raise DataError(f"GeneCIS has tasks {', '.join(TASKS)}, not {task!r}")
    (ann_file,) = annotation_files(root, task)
    entries = read_json_list(ann_file, "queries")
    dirs = {"coco_dir": os.path.join(root, coco_dir), "vg_dir": os.path.join(root, vg_dir)}
    images: dict[str, ImageRef] = {}
    queries, truths, galleries = [], [], []
    for i, e in enumerate(entries):
        where = f"entry {i}"
        ref = _image(field(e, "reference", dict, file=ann_file, where=where), file=ann_file, where=f"{where} reference", **dirs)
        target = _image(field(e, "target", dict, file=ann_file, where=where), file=ann_file, where=f"{where} target", **dirs)
        gallery = [_image(g, file=ann_file, where=f"{where} gallery[{j}]", **dirs)
                   for j, g in enumerate(field(e, "gallery", list, file=ann_file, where=where))]
        condition = field(e, "condition", str, file=ann_file, where=where)
        for im in (ref, target, *gallery):
            images.setdefault(im.id, im)
        candidates = tuple(dict.fromkeys([target.id, *(g.id for g in gallery)]))
        queries.append(ComposedQuery(str(i), ref.id, condition))
        truths.append(Truth(target=target.id, subset=candidates))
        galleries.append(candidates)
    return Split(f"genecis-{task}", "val", Gallery(f"genecis-{task}", tuple(images.values())), tuple(queries),
                 tuple(truths), tuple(galleries))
