"""Oracle backends: every role answered from the built-in benchmark's ground truth, with a seeded noise knob.

The oracle reads ``scenes.json`` and ``edits.json`` from the exported benchmark folder (``backend.model``, or
the world's folder) and nothing else; images are known by their benchmark id (the file name). It answers
what a perfect model would:

- captioner: the scene's caption;
- reasoner: parses the reference description (a caption) and the instruction (an edit's text), writes the
  target description (a chat round: the previous description joined with the new question/answer), the atomic operations (``Retention: ...`` for what stays) and, asked about operations,
  yes/no propositions in a small fixed grammar that its verifier reads back;
- verifier: answers a proposition from the candidate's scene graph;
- evaluator: yes exactly when the candidate's scene is a valid target of the edit applied to the reference
  (text-to-image: when the candidate's caption is the query);
- multimodal reasoner: OSrCIR's keys, from the reference image's scene and the instruction.

With probability ``backend.noise`` (a uniform draw from a hash of the request and ``decoding.seed``, so the
wrong answers at noise 0.1 are a subset of those at 0.2) an answer is wrong: a random scene's caption, a
random other edit's description, a flipped yes/no. Every answer is labelled ``oracle:<folder>``.
"""

from __future__ import annotations

import functools
import json
import os
import re

import numpy as np

from ...builtin.edits import Edit, random_edit, valid_targets
from ...builtin.scenes import Obj, Scene, caption, plural
from ...engine import digest
from ..config import BackendConfig, BackendError
from ..requests import ChatRequest, ChatResponse, request_identity

__all__ = ["OracleBackend", "OracleWorld", "propositions_for", "answer_proposition"]

_NOISE_SALT = "cirkit-oracle-noise"
BLANK = "A blank image."  # the reference text of queries without a reference image (text-to-image, chat)


class OracleWorld:
    """The facts of one exported benchmark: the scene of every image and the edit behind every instruction."""

    def __init__(self, folder: str) -> None:
        paths = {name: os.path.join(folder, name) for name in ("scenes.json", "edits.json")}
        for name, path in paths.items():
            if not os.path.isfile(path):
                raise BackendError(f"{path}: the oracle needs the built-in benchmark's {name} (backend.model "
                                   f"must be an exported built-in benchmark folder)")
        scenes = json.loads(open(paths["scenes.json"], encoding="utf-8").read())
        self.scenes = {int(i): Scene(s["background"], tuple(Obj(*o) for o in s["objects"])).canonical()
                       for i, s in scenes.items()}
        self.by_caption = {caption(s): s for s in self.scenes.values()}
        self.ids = sorted(self.scenes)
        self.edits: dict[str, Edit] = {}
        for e in json.loads(open(paths["edits.json"], encoding="utf-8").read()):
            edit = Edit(e["kind"], Obj(*e["target"]) if e["target"] else None, e["value"])
            self.edits.setdefault(edit.text(), edit)

    def scene_of(self, image_id: str) -> Scene | None:
        stem = os.path.splitext(os.path.basename(image_id))[0]
        return self.scenes.get(int(stem)) if stem.isdigit() else None

    def edit_for(self, instruction: str, reference: Scene | None) -> Edit | None:
        """The edit behind an instruction, bound to the reference's object with the same phrase."""
        edit = self.edits.get(instruction.strip())
        if edit is None or edit.target is None or reference is None:
            return edit
        key = (lambda o: (o.colour, o.shape)) if edit.kind == "count" else (lambda o: o.phrase())  # noqa: E731
        same = [o for o in reference.objects if key(o) == key(edit.target)]
        return Edit(edit.kind, same[0], edit.value) if same else None


def _describe(reference: Scene, edit: Edit) -> str:
    """The target's description: its caption, or for open edits (add) the reference plus the new object."""
    if edit.kind in ("add", "count"):
        colour, shape = edit.value.split(" ") if edit.kind == "add" else (edit.target.colour, edit.target.shape)
        objects = caption(reference).rsplit(" on a ", 1)[0]
        return f"{objects} and a {colour} {shape} on a {reference.background} background"
    return caption(sorted(valid_targets(reference, edit))[0])


def _retention(reference: Scene, edit: Edit) -> list[str]:
    kept = [o for o in reference.objects if edit.target is None or o != edit.target]
    out = [f"Retention: a {o.phrase()} at the {o.position}" for o in kept if edit.kind != "background"]
    if edit.kind != "background":
        out.append(f"Retention: the {reference.background} background")
    return out


def _operations(reference: Scene, edit: Edit) -> list[str]:
    """The edit as atomic operations: what it asks, where the changed object ends up, what it empties."""
    kind = {"remove": "Removal", "add": "Addition", "count": "Addition"}.get(edit.kind, "Modification")
    out = [f"{kind}: {edit.text()}"]
    if edit.kind in ("colour", "shape", "move"):
        changed = [o for o in sorted(valid_targets(reference, edit))[0].objects if o not in reference.objects]
        out += [f"{kind}: a {o.phrase()} at the {o.position}" for o in changed]
    if edit.kind in ("remove", "move"):
        out.append(f"{kind}: nothing at the {edit.target.position}")
    if edit.kind == "add":
        colour, shape = edit.value.split(" ")
        if any((o.colour, o.shape) == (colour, shape) for o in reference.objects):
            out.append(f"{kind}: there should be two {colour} {plural(shape)}")
    return out


def propositions_for(operations: list[str]) -> list[dict]:
    """Yes/no propositions (the oracle's grammar) for operations written as ``Kind: text``."""
    out = []
    for op in operations:
        kind, _, text = str(op).partition(": ")
        m = re.fullmatch(r"a (\w+) (\w+) (\w+) at the (.+)", text)
        if m:
            out.append({"question": f"Is there a {m[1]} {m[2]} {m[3]} at the {m[4]}?", "answer": "yes"})
        elif kind == "Retention" and (m := re.fullmatch(r"the (\w+) background", text)):
            out.append({"question": f"Is the background {m[1]}?", "answer": "yes"})
        elif m := re.fullmatch(r"nothing at the (.+)", text):
            out.append({"question": f"Is there anything at the {m[1]}?", "answer": "no"})
        elif m := re.fullmatch(r"make the (\w+) (\w+) (\w+) (\w+)", text):
            out += [{"question": f"Is there a {m[1]} {m[4]} {m[3]}?", "answer": "yes"},
                    {"question": f"Is there a {m[1]} {m[2]} {m[3]}?", "answer": "no"}]
        elif m := re.fullmatch(r"turn the (\w+) (\w+) (\w+) into a (\w+)", text):
            out += [{"question": f"Is there a {m[1]} {m[2]} {m[4]}?", "answer": "yes"},
                    {"question": f"Is there a {m[1]} {m[2]} {m[3]}?", "answer": "no"}]
        elif m := re.fullmatch(r"move the (\w+) (\w+) (\w+) to the (.+)", text):
            out.append({"question": f"Is there a {m[1]} {m[2]} {m[3]} at the {m[4]}?", "answer": "yes"})
        elif m := re.fullmatch(r"remove the (\w+) (\w+) (\w+)", text):
            out.append({"question": f"Is there a {m[1]} {m[2]} {m[3]}?", "answer": "no"})
        elif m := re.fullmatch(r"add a (\w+) (\w+)", text):
            out.append({"question": f"Is there a {m[1]} {m[2]}?", "answer": "yes"})
        elif m := re.fullmatch(r"there should be two (\w+) (\w+)", text):
            out.append({"question": f"Are there two {m[1]} {m[2]}?", "answer": "yes"})
        elif m := re.fullmatch(r"change the background to (\w+)", text):
            out.append({"question": f"Is the background {m[1]}?", "answer": "yes"})
    return out


def answer_proposition(scene: Scene, question: str) -> bool | None:
    """The truth of a proposition in the oracle's grammar about ``scene`` (None: not in the grammar)."""
    q = re.sub(r"^answer the question with yes or no\.\s*", "", question.strip(), flags=re.I)
    if m := re.fullmatch(r"Is the background (\w+)\?", q):
        return scene.background == m[1]
    if m := re.fullmatch(r"Is there anything at the (.+)\?", q):
        return any(o.position == m[1] for o in scene.objects)
    if m := re.fullmatch(r"Are there two (\w+) (\w+)\?", q):
        return sum(1 for o in scene.objects if o.colour == m[1] and plural(o.shape) == m[2]) >= 2
    if m := re.fullmatch(r"Is there a (?:(small|large) )?(\w+) (\w+)(?: at the (.+))?\?", q):
        size, colour, shape, position = m[1], m[2], m[3], m[4]
        return any(o.colour == colour and o.shape == shape and (size is None or o.size == size)
                   and (position is None or o.position == position) for o in scene.objects)
    return None


@functools.lru_cache(maxsize=4)
def _cached_world(folder: str, stamp: tuple) -> OracleWorld:
    return OracleWorld(folder)


def _world(folder: str) -> OracleWorld:
    """One parsed world per folder and file state (an edited scenes.json is read again)."""
    stamp = tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) if os.path.isfile(p) else None
                  for p in (os.path.join(folder, "scenes.json"), os.path.join(folder, "edits.json")))
    return _cached_world(folder, stamp)


class OracleBackend:
    def __init__(self, config: BackendConfig) -> None:
        if not 0.0 <= config.noise <= 1.0:
            raise BackendError(f"backend.noise must be a probability in [0, 1], got {config.noise}")
        self.world = _world(os.path.abspath(config.model))
        self.noise = config.noise
        self.name = f"oracle:{os.path.basename(os.path.normpath(config.model))}"

    def _rng(self, request: ChatRequest) -> tuple[bool, np.random.Generator]:
        """(answer wrongly?, a generator for the wrong answer), both fixed by the request and the seed."""
        seed = int(digest((_NOISE_SALT, request.decoding.seed, request_identity(request)))[:16], 16)
        rng = np.random.default_rng(seed)
        return bool(rng.random() < self.noise), rng

    def _scene(self, request: ChatRequest, i: int) -> Scene | None:
        images = request.images()
        return self.world.scene_of(images[i].id or images[i].path) if len(images) > i else None

    def _random_scene(self, rng: np.random.Generator) -> Scene:
        return self.world.scenes[self.world.ids[int(rng.integers(len(self.world.ids)))]]

    def _target(self, reference: Scene | None, instruction: str, wrong: bool, rng) -> tuple[str, list[str]]:
        """(target description, operations) for a reference scene and an instruction."""
        edit = self.world.edit_for(instruction, reference)
        if reference is None or edit is None:  # text-to-image: the query is the description
            return (caption(self._random_scene(rng)) if wrong else instruction), []
        if wrong:
            other = None
            while other is None or other == edit:
                other = random_edit(reference, rng)
            edit = other
        return _describe(reference, edit), [*_operations(reference, edit), *_retention(reference, edit)]

    def _reason(self, request: ChatRequest, wrong: bool, rng) -> str:
        if request.field("operations"):
            try:
                operations = json.loads(request.field("operations"))
            except ValueError:
                operations = []
            props = propositions_for(operations if isinstance(operations, list) else [])
            if wrong:
                props = [{**p, "answer": "no" if p["answer"] == "yes" else "yes"} for p in props]
            return json.dumps({"propositions": props})
        known = request.field("reference").strip()
        reference = self.world.by_caption.get(known)
        instruction = request.field("instruction").strip()
        if reference is None and known and known != BLANK and instruction not in self.world.edits:
            # a chat round: what is known so far (the previous description) plus the new question/answer
            target = caption(self._random_scene(rng)) if wrong else ", ".join(t for t in (known, instruction) if t)
            return json.dumps({"operations": [], "descriptions": [target], "target": target, "step1": [],
                               "step2": [target]})
        target, operations = self._target(reference, request.field("instruction"), wrong, rng)
        return json.dumps({"operations": operations, "descriptions": [target], "target": target,
                           "step1": operations, "step2": [target]})

    def _answer(self, request: ChatRequest) -> ChatResponse:
        wrong, rng = self._rng(request)
        role = request.role
        if role == "captioner":
            scene = self._scene(request, 0)
            if scene is None:
                return ChatResponse("", self.name, "stop", error="oracle: unknown image")
            return ChatResponse(caption(self._random_scene(rng) if wrong else scene), self.name, "stop")
        if role == "reasoner":
            return ChatResponse(self._reason(request, wrong, rng), self.name, "stop")
        if role == "multimodal_reasoner":
            reference = self._scene(request, 0)
            target, _ = self._target(reference, request.field("instruction"), wrong, rng)
            body = {"Original Image Description": caption(reference) if reference else "", "Thoughts": "",
                    "Reflections": "", "Target Image Description": target}
            return ChatResponse(json.dumps(body), self.name, "stop")
        if role == "verifier":
            scene = self._scene(request, 0)
            truth = answer_proposition(scene, request.field("question")) if scene else None
            verdict = bool(truth) != wrong
            return ChatResponse("Yes" if verdict else "No", self.name, "stop", 1.0 if verdict else 0.0)
        if role == "evaluator":
            verdict = self._judge(request) != wrong
            return ChatResponse("Yes" if verdict else "No", self.name, "stop", 1.0 if verdict else 0.0)
        raise BackendError(f"the oracle cannot act as a {role}")

    def _judge(self, request: ChatRequest) -> bool:
        """Ground truth: is the candidate a valid target of the instruction applied to the reference?"""
        images = request.images()
        if len(images) == 1 and "+" in images[0].id:  # one stitched image, named "<reference>+<candidate>"
            left, right = images[0].id.split("+", 1)
            reference, candidate = self.world.scene_of(left), self.world.scene_of(right)
        elif len(images) > 1:
            reference, candidate = self._scene(request, 0), self._scene(request, 1)
        else:
            reference, candidate = None, self._scene(request, 0)
        instruction = request.field("instruction")
        if candidate is None:
            return False
        if reference is None:
            return caption(candidate) == instruction.strip()
        edit = self.world.edit_for(instruction, reference)
        return edit is not None and candidate in valid_targets(reference, edit)

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        return [self._answer(r) for r in requests]
