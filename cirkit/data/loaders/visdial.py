"""VisDial v1.0 val as chat-based retrieval (ChatIR's layout): dialogues and a 50k-image search space.

``VisDial_v1.0_queries_val.json``: ``[{"img": path, "dialog": [caption, "q? a", ... x10]}]``;
``Search_Space_val_50k.json``: the list of image paths the target is searched in.
"""

from __future__ import annotations

import os

from ..errors import DataError, field, find_file, read_json, read_json_list
from ..model import ChatQuery, Gallery, ImageRef, Split, Truth


def annotation_files(root: str) -> list[str]:
    return [find_file(root, "VisDial_v1.0_queries_val.json", "dialogues/VisDial_v1.0_queries_val.json"),
            find_file(root, "Search_Space_val_50k.json", "dialogues/Search_Space_val_50k.json")]


def load(root: str, images_root: str | None = None) -> Split:
    dialog_file, space_file = annotation_files(root)
    space = read_json(space_file)
    if not isinstance(space, list) or not all(isinstance(p, str) for p in space):
        raise DataError(f"{space_file}: expected a list of image paths (str)")
    base = os.path.join(root, images_root) if images_root else root
    images = tuple(ImageRef(p, os.path.join(base, p)) for p in space)
    known = set(space)
    dialogs = read_json_list(dialog_file, "dialogues")
    queries, truths = [], []
    for i, e in enumerate(dialogs):
        img = field(e, "img", str, file=dialog_file, where=f"entry {i}")
        dialog = field(e, "dialog", list, file=dialog_file, where=f"entry {i}")
        if not dialog or not all(isinstance(t, str) for t in dialog):
            raise DataError(f"{dialog_file}: entry {i}: field 'dialog': expected a non-empty list of strings")
        if img not in known:
            raise DataError(f"{dialog_file}: entry {i}: image {img!r} is not in the search space {space_file}")
        queries.append(ChatQuery(str(i), dialog[0], tuple(dialog[1:])))
        truths.append(Truth(target=img))
    return Split("visdial", "val", Gallery("visdial-val-50k", images), tuple(queries), tuple(truths))
