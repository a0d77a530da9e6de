"""CIRCO (Baldrati et al., ICCV 2023): val and test; the gallery is COCO 2017 unlabeled (about 123k images).

Image ids are integers, file names the 12-digit zero-padded id + ``.jpg``. The gallery list comes from
``image_info_unlabeled2017.json`` (COCO's own index), or, if that file is absent, from the image folder.
"""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json, read_json_list
from ..model import ComposedQuery, Gallery, ImageRef, Split, Truth

SPLITS = ("val", "test")
_INFO = ("COCO2017_unlabeled/annotations/image_info_unlabeled2017.json", "image_info_unlabeled2017.json")
_IMAGES = ("COCO2017_unlabeled/unlabeled2017", "unlabeled2017")


def image_dir(root: str) -> str:
    for rel in _IMAGES:
        if os.path.isdir(os.path.join(root, rel)):
            return os.path.join(root, rel)
    return os.path.join(root, _IMAGES[0])


def annotation_files(root: str, split: str) -> list[str]:
    files = [find_file(root, f"annotations/{split}.json", f"{split}.json")]
    try:
        files.append(find_file(root, *_INFO))
    except DataError:
        pass
    return files


def load(root: str, split: str = "val", require_gallery: bool = True, images_root: str | None = None) -> Split:
    """``require_gallery=False`` reads the queries alone when no gallery index or folder is present (enough to
    score a submission file)."""
    if split not in SPLITS:
        raise DataError(f"CIRCO has splits {', '.join(SPLITS)}, not {split!r}")
    files = annotation_files(root, split)
    ann_file = files[0]
    folder = os.path.join(root, images_root) if images_root else image_dir(root)
    if len(files) > 1:
        info = read_json(files[1])
        entries = field(info, "images", list, file=files[1], where="top level")
        ids = [field(im, "id", int, file=files[1], where=f"images[{i}]") for i, im in enumerate(entries)]
        names = [field(im, "file_name", str, file=files[1], where=f"images[{i}]") for i, im in enumerate(entries)]
    elif os.path.isdir(folder):
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
        ids = [int(os.path.splitext(n)[0]) for n in names]
    elif require_gallery:
        raise DataError(f"{root}: CIRCO needs {' or '.join(_INFO)} or the image folder {folder} to build its gallery")
    else:
        ids, names = [], []
    images = tuple(ImageRef(str(i), os.path.join(folder, n)) for i, n in zip(ids, names))
    known = {str(i) for i in ids}
    check = bool(images)
    data = read_json_list(ann_file, "queries")
    queries, truths = [], []
    for i, e in enumerate(data):
        where = f"entry {i}"
        qid = field(e, "id", int, file=ann_file, where=where)
        ref = field(e, "reference_img_id", int, file=ann_file, where=where)
        text = field(e, "relative_caption", str, file=ann_file, where=where)
        concept = field(e, "shared_concept", str, file=ann_file, where=where, optional=True)
        queries.append(ComposedQuery(str(qid), str(ref), text, concept))
        if split == "val":
            target = field(e, "target_img_id", int, file=ann_file, where=where)
            gts = field(e, "gt_img_ids", list, file=ann_file, where=where)
            aspects = field(e, "semantic_aspects", list, file=ann_file, where=where, optional=True) or []
            for g in (ref, target, *gts):
                if check and str(g) not in known:
                    raise DataError(f"{ann_file}: {where}: image id {g} is not in the CIRCO gallery")
            truths.append(Truth(target=str(target), targets=tuple(str(g) for g in gts), aspects=tuple(aspects)))
        elif check and str(ref) not in known:
            raise DataError(f"{ann_file}: {where}: reference image id {ref} is not in the CIRCO gallery")
    return Split("circo", split, Gallery("circo-unlabeled2017", images), tuple(queries),
                 tuple(truths) if split == "val" else None)
