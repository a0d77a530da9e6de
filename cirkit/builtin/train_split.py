"""A composed train split of the built-in benchmark: (reference, edit text, target) triplets in the CIRR and
FashionIQ train layouts, so the real loaders read it with ``split = "train"``.

    images/<12-digit id>.png                         every train image (ids from TRAIN_ID_BASE up)
    captions/cap.rc2.train.json                      CIRR layout: triplets with six-image subsets
    image_splits/split.rc2.train.json
    captions/cap.<category>.train.json               FashionIQ layout: the same triplets, two captions each,
    image_splits/split.<category>.train.json         category = number of objects in the reference
    scenes.json, edits.json                          the scene of every train image and every triplet's edit

No leakage: the split is generated from its own random stream, its image ids never meet the benchmark's, and a
triplet is drawn again whenever any of its scenes (reference, target, near misses) is the scene of an image of
the benchmark's composed queries (their references, every valid target and the subset members). Deterministic
from the seed: the same config and benchmark give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
from PIL import Image

from .. import config_checks as checks
from .edits import Edit, near_misses, random_edit, valid_targets
from .scenes import Obj, Scene, png_bytes, random_scene, render

__all__ = ["TrainSplitConfig", "generate_train_files", "held_out_scenes", "read_scenes", "TRAIN_ID_BASE",
           "FASHIONIQ_CATEGORIES"]

TRAIN_ID_BASE = 1_000_000_000  # the benchmark's own ids count up from 0 and stay far below this
FASHIONIQ_CATEGORIES = {1: "dress", 2: "shirt", 3: "toptee"}  # objects in the reference -> category
_STREAM = 0x7121  # a second random stream, so seed 0 here is not the benchmark's seed-0 sequence
_NEGATIVES = 4  # CIRR subsets have six members: reference, target and four near misses


@dataclasses.dataclass(frozen=True)
class TrainSplitConfig:
    seed: int = 0
    n_triplets: int = 4000

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "seed")
        checks.integers_at_least(self, 1, "n_triplets")


def read_scenes(data: bytes) -> dict[int, Scene]:
    """``scenes.json`` (image id -> background and objects) as canonical scenes."""
    return {int(i): Scene(s["background"], tuple(Obj(*o) for o in s["objects"])).canonical()
            for i, s in json.loads(data).items()}


def held_out_scenes(benchmark: dict[str, bytes]) -> frozenset[Scene]:
    """The scenes of every image of the benchmark's composed queries (the CIRR/CIRCO evaluation images)."""
    scenes = read_scenes(benchmark["scenes.json"])
    ids: set[int] = set()
    for entry in json.loads(benchmark["captions/cap.rc2.val.json"]):
        ids |= {int(n) for n in (entry["reference"], entry["target_hard"], *entry["img_set"]["members"])}
    for entry in json.loads(benchmark["annotations/val.json"]):
        ids |= {entry["reference_img_id"], entry["target_img_id"], *entry["gt_img_ids"]}
    ids |= {int(n) for n in json.loads(benchmark["image_splits/split.rc2.val.json"])}
    return frozenset(scenes[i] for i in ids)


def _image_size(benchmark: dict[str, bytes]) -> int:
    first = next(name for name in sorted(benchmark) if name.startswith("images/"))
    return Image.open(io.BytesIO(benchmark[first])).size[0]


def _second_caption(ref: Scene, edit: Edit) -> str:
    """FashionIQ pairs carry two relative captions; the second says what the edit leaves alone."""
    return "keep the objects as they are" if edit.kind == "background" else f"keep the {ref.background} background"


def _name(i: int) -> str:
    return f"{i:012d}"


def generate_train_files(cfg: TrainSplitConfig, benchmark: dict[str, bytes]) -> dict[str, bytes]:
    """Every file of the train split (relative path -> bytes), disjoint from ``benchmark``'s composed queries."""
    held = held_out_scenes(benchmark)
    size = _image_size(benchmark)
    rng = np.random.default_rng([cfg.seed, _STREAM])
    files: dict[str, bytes] = {}
    scenes: dict[int, Scene] = {}

    def add(scene: Scene) -> str:
        i = TRAIN_ID_BASE + len(scenes)
        scenes[i] = scene
        files[f"images/{_name(i)}.png"] = png_bytes(render(scene, size, jitter_seed=i))
        return _name(i)

    cirr, edits, fashion = [], [], {c: [] for c in FASHIONIQ_CATEGORIES.values()}
    while len(cirr) < cfg.n_triplets:
        ref = random_scene(rng)
        edit = random_edit(ref, rng)
        if edit is None:
            continue
        targets = sorted(valid_targets(ref, edit))
        target = targets[int(rng.integers(len(targets)))]
        negatives = near_misses(ref, edit, rng, _NEGATIVES)
        if len(negatives) < _NEGATIVES or any(s in held for s in (ref, target, *negatives)):
            continue
        n = len(cirr)
        ref_name, target_name = add(ref), add(target)
        members = [ref_name, target_name, *(add(s) for s in negatives)]
        members = [members[i] for i in rng.permutation(len(members))]
        cirr.append({"pairid": n, "reference": ref_name, "target_hard": target_name,
                     "target_soft": {target_name: 1.0}, "caption": edit.text(),
                     "img_set": {"id": n, "members": members, "reference_rank": members.index(ref_name),
                                 "target_rank": members.index(target_name)}})
        edits.append({"id": n, "kind": edit.kind, "value": edit.value,
                      "target": dataclasses.astuple(edit.target) if edit.target else None})
        fashion[FASHIONIQ_CATEGORIES[len(ref.objects)]].append(
            {"target": target_name, "candidate": ref_name, "captions": [edit.text(), _second_caption(ref, edit)]})

    dump = lambda obj: json.dumps(obj, indent=None, sort_keys=False).encode()  # noqa: E731
    files["captions/cap.rc2.train.json"] = dump(cirr)
    files["image_splits/split.rc2.train.json"] = dump({_name(i): f"./images/{_name(i)}.png" for i in sorted(scenes)})
    for category, entries in fashion.items():
        files[f"captions/cap.{category}.train.json"] = dump(entries)
        used = sorted({name for e in entries for name in (e["candidate"], e["target"])})
        files[f"image_splits/split.{category}.train.json"] = dump(used)
    files["scenes.json"] = dump({str(i): {"background": s.background, "objects": [dataclasses.astuple(o) for o in s.objects]}
                                 for i, s in scenes.items()})
    files["edits.json"] = dump(edits)
    return files
