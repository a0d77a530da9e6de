"""Generate the built-in benchmark and lay it out in the official formats the real loaders read.

    images/<12-digit id>.png                  every image (ids are integers, as in COCO/CIRCO)
    dataset_builtin.json                      Karpathy layout: train pairs and the text-to-image test split
    captions/cap.rc2.val.json                 CIRR layout: composed queries with six-image subsets
    image_splits/split.rc2.val.json
    annotations/val.json                      CIRCO layout: the same queries with every valid target
    image_info_unlabeled2017.json             CIRCO's gallery index (the composed gallery)
    VisDial_v1.0_queries_val.json             ChatIR layout: dialogues narrowing down to a target
    Search_Space_val_50k.json
    scenes.json, edits.json                   the ground-truth scene of every image and every query's edit

Deterministic from the seed: the same config gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from .. import config_checks as checks
from .edits import near_misses, random_edit, valid_targets
from .scenes import POSITIONS, Scene, caption, png_bytes, random_scene, render

__all__ = ["BuiltinConfig", "generate_files"]


@dataclasses.dataclass(frozen=True)
class BuiltinConfig:
    seed: int = 0
    image_size: int = 64
    n_train: int = 8000
    n_t2i: int = 1000
    n_composed: int = 400
    n_chat: int = 300
    n_chat_distractors: int = 1700
    alternatives: int = 2  # extra valid targets rendered per composed query (when the edit allows them)
    chat_rounds: int = 5

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "image_size", "n_train", "n_t2i", "n_composed", "n_chat", "chat_rounds")
        checks.integers_at_least(self, 0, "n_chat_distractors", "alternatives")


class _Images:
    """Assigns ids and renders each image once (with a per-image jitter, so equal scenes differ slightly)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.files: dict[str, bytes] = {}
        self.scenes: dict[int, Scene] = {}

    def add(self, scene: Scene) -> int:
        i = len(self.scenes)
        self.scenes[i] = scene
        self.files[f"images/{i:012d}.png"] = png_bytes(render(scene, self.size, jitter_seed=i))
        return i


def _name(i: int) -> str:
    return f"{i:012d}"


def _composed(cfg: BuiltinConfig, rng: np.random.Generator, images: _Images) -> tuple[list, list[int]]:
    queries, gallery = [], []
    while len(queries) < cfg.n_composed:
        ref = random_scene(rng)
        edit = random_edit(ref, rng)
        if edit is None:
            continue
        targets = sorted(valid_targets(ref, edit))
        chosen = [targets[i] for i in rng.permutation(len(targets))[: 1 + cfg.alternatives]]
        negatives = near_misses(ref, edit, rng, 4)
        if len(negatives) < 4:
            continue
        ref_id = images.add(ref)
        target_ids = [images.add(s) for s in chosen]
        negative_ids = [images.add(s) for s in negatives]
        members = [ref_id, target_ids[0], *negative_ids]
        members = [members[i] for i in rng.permutation(6)]
        queries.append((ref, edit, ref_id, target_ids[0], members))
        gallery += [ref_id, *target_ids, *negative_ids]
    return queries, gallery


def _dialogue(scene: Scene, rng: np.random.Generator, rounds: int) -> list[str]:
    """A vague first caption, then questions whose answers narrow the scene down."""
    first = scene.objects[rng.integers(len(scene.objects))]
    turns = [f"a picture with a {first.colour} {first.shape}"]
    questions = [f"what colour is the background? {scene.background}",
                 f"how many objects are there? {len(scene.objects)}"]
    for o in scene.objects:
        questions.append(f"where is the {o.colour} {o.shape}? at the {o.position}")
        questions.append(f"is the {o.colour} {o.shape} large? {'yes' if o.size == 'large' else 'no'}")
    present = {o.position for o in scene.objects}
    empty = [p for p in POSITIONS if p not in present]
    if empty:
        questions.append(f"is there anything at the {empty[0]}? no")
    order = rng.permutation(len(questions))
    return turns + [questions[i] for i in order[:rounds]]


def generate_files(cfg: BuiltinConfig) -> dict[str, bytes]:
    """Every file of the benchmark: relative path -> bytes."""
    rng = np.random.default_rng(cfg.seed)
    images = _Images(cfg.image_size)
    karpathy = []
    for split, n in (("train", cfg.n_train), ("test", cfg.n_t2i)):
        for _ in range(n):
            scene = random_scene(rng)
            i = images.add(scene)
            karpathy.append({"filename": f"{_name(i)}.png", "filepath": "", "imgid": i, "split": split,
                             "sentences": [{"raw": caption(scene), "sentid": i}]})
    queries, composed_gallery = _composed(cfg, rng, images)
    chat_targets = [images.add(random_scene(rng)) for _ in range(cfg.n_chat)]
    chat_space = chat_targets + [images.add(random_scene(rng)) for _ in range(cfg.n_chat_distractors)]
    chat_space = [chat_space[i] for i in rng.permutation(len(chat_space))]

    gallery_ids = sorted(set(composed_gallery))
    by_scene: dict[Scene, list[int]] = {}
    for i in gallery_ids:
        by_scene.setdefault(images.scenes[i], []).append(i)
    cirr, circo = [], []
    for n, (ref, edit, ref_id, target_id, members) in enumerate(queries):
        text = edit.text()
        valid = sorted(i for s in valid_targets(ref, edit) for i in by_scene.get(s, []))
        cirr.append({"pairid": n, "reference": _name(ref_id), "target_hard": _name(target_id),
                     "target_soft": {_name(target_id): 1.0}, "caption": text,
                     "img_set": {"id": n, "members": [_name(m) for m in members],
                                 "reference_rank": members.index(ref_id)}})
        circo.append({"id": n, "reference_img_id": ref_id, "target_img_id": target_id, "relative_caption": text,
                      "shared_concept": edit.kind, "gt_img_ids": valid, "semantic_aspects": [edit.kind]})
    files = dict(images.files)
    files["scenes.json"] = json.dumps({str(i): {"background": sc.background, "objects": [dataclasses.astuple(o) for o in sc.objects]}
                                       for i, sc in images.scenes.items()}).encode()
    files["edits.json"] = json.dumps([{"id": n, "kind": e.kind, "value": e.value,
                                       "target": dataclasses.astuple(e.target) if e.target else None}
                                      for n, (_, e, *_rest) in enumerate(queries)]).encode()
    dump = lambda obj: json.dumps(obj, indent=None, sort_keys=False).encode()  # noqa: E731
    files["dataset_builtin.json"] = dump({"dataset": "builtin", "images": karpathy})
    files["captions/cap.rc2.val.json"] = dump(cirr)
    files["image_splits/split.rc2.val.json"] = dump({_name(i): f"./images/{_name(i)}.png" for i in gallery_ids})
    files["annotations/val.json"] = dump(circo)
    files["image_info_unlabeled2017.json"] = dump({"images": [{"id": i, "file_name": f"{_name(i)}.png"} for i in gallery_ids]})
    files["VisDial_v1.0_queries_val.json"] = dump(
        [{"img": f"images/{_name(i)}.png", "dialog": _dialogue(images.scenes[i], rng, cfg.chat_rounds)} for i in chat_targets])
    files["Search_Space_val_50k.json"] = dump([f"images/{_name(i)}.png" for i in chat_space])
    return files
