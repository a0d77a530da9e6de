"""Exact CoT annotations of the built-in benchmark, written from its scene graphs.

The caption is the reference scene's caption; the reasoning says what the edit changes, what it keeps and
what it leaves open; the conclusion describes the target: its caption where the edit pins it down, and for
"add" edits (size and position open) the reference's objects plus the new one. Works on the benchmark's
composed queries and on its train split, in any layout the real loaders read (CIRR, CIRCO, FashionIQ).
"""

from __future__ import annotations

import json

from ..builtin.edits import Edit, valid_targets
from ..builtin.files import FileSet
from ..builtin.scenes import POSITIONS, Obj, Scene, caption
from ..builtin.train_split import read_scenes
from ..data.errors import DataError
from ..data.model import ComposedQuery, Split
from ..engine import stage
from .cot import CotAnnotation, CotAnnotations

__all__ = ["scene_cot", "cot_from_scenes"]


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _in_caption_order(scene: Scene) -> list[Obj]:
    return sorted(scene.objects, key=lambda o: POSITIONS.index(o.position))


def _kept(ref: Scene, edit: Edit) -> str:
    if edit.kind == "background":
        return "Every object stays as it is."
    changed = edit.target if edit.kind in ("colour", "shape", "move", "remove") else None
    kept = [f"the {o.phrase()} at the {o.position}" for o in _in_caption_order(ref) if o != changed]
    kept.append(f"the {ref.background} background")
    text = f"{_listing(kept)} {'stays' if len(kept) == 1 else 'stay'}."
    return text[0].upper() + text[1:]


def _change(ref: Scene, edit: Edit) -> str:
    t = edit.target
    free = _listing(ref.free_positions()) if ref.free_positions() else ""
    if edit.kind == "colour":
        return f"The {t.phrase()} at the {t.position} must become {edit.value}; its shape, size and position do not change."
    if edit.kind == "shape":
        return f"The {t.phrase()} at the {t.position} must become a {edit.value}; its colour, size and position do not change."
    if edit.kind == "move":
        return f"The {t.phrase()} must go from the {t.position} to the {edit.value}, leaving the {t.position} empty."
    if edit.kind == "remove":
        return f"The {t.phrase()} at the {t.position} must disappear, leaving the {t.position} empty."
    if edit.kind == "add":
        return (f"A {edit.value} must be added. The instruction gives neither its size nor its place, so it may be "
                f"small or large at any free position ({free}).")
    if edit.kind == "count":
        return (f"There is one {t.colour} {t.shape} and there must be two, so another {t.colour} {t.shape} is added; "
                f"its size and place are open (any free position: {free}).")
    return f"The background must change from {ref.background} to {edit.value}."


def _conclusion(ref: Scene, edit: Edit) -> str:
    if edit.kind in ("add", "count"):
        colour, shape = edit.value.split(" ") if edit.kind == "add" else (edit.target.colour, edit.target.shape)
        objects = caption(ref).rsplit(" on a ", 1)[0]
        return f"{objects} and a {colour} {shape} on a {ref.background} background"
    (target,) = valid_targets(ref, edit)
    return caption(target)


def scene_cot(ref: Scene, edit: Edit) -> tuple[str, str, str]:
    """(caption, reasoning, conclusion) of the edit applied to the reference scene."""
    return caption(ref), f"{_change(ref, edit)} {_kept(ref, edit)}", _conclusion(ref, edit)


def _file(files: FileSet, name: str) -> bytes:
    for found, data in files.items():
        if found == name:
            return data
    raise DataError(f"the file set has no {name} (scene-graph annotations need the built-in benchmark's files)")


def _edits_by_reference(files: FileSet) -> dict[int, Edit]:
    """Each query's edit, keyed by its reference image id (every composed query has its own reference)."""
    edits = {e["id"]: Edit(e["kind"], Obj(*e["target"]) if e["target"] else None, e["value"])
             for e in json.loads(_file(files, "edits.json"))}
    out: dict[int, Edit] = {}
    for name in files.names:
        if name.startswith("captions/cap.rc2.") and name.endswith(".json"):
            for entry in json.loads(_file(files, name)):
                out[int(entry["reference"])] = edits[entry["pairid"]]
    return out


@stage(version=1, helpers=[scene_cot, _edits_by_reference, read_scenes])
def cot_from_scenes(config: None, files: FileSet, split: Split) -> CotAnnotations:
    """Exact annotations of every composed query of ``split`` (loaded from the folder ``files`` was exported to)."""
    scenes = read_scenes(_file(files, "scenes.json"))
    edits = _edits_by_reference(files)
    items = []
    for q in split.queries:
        if not isinstance(q, ComposedQuery):
            raise DataError(f"{split.benchmark} {split.split}: query {q.id} is not a composed query")
        ref_id = int(q.reference) if q.reference.isdigit() else -1
        if ref_id not in scenes or ref_id not in edits:
            raise DataError(f"{split.benchmark} {split.split}: query {q.id}: reference image {q.reference!r} has no "
                            f"scene and edit in these files (scene-graph annotations need the files of this split)")
        items.append(CotAnnotation(q.id, q.reference, q.text, *scene_cot(scenes[ref_id], edits[ref_id])))
    return CotAnnotations(split.benchmark, split.split, "scene graphs", tuple(items))
