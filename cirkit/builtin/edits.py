"""Modifications of a scene (the composed task) and the exact set of scenes that satisfy each one.

Some edits pin the target down (change a colour or a shape, move or remove an object, change the
background); others leave choices open (add an object, add one more of a kind: any size, any free
position), which gives queries several valid targets, as in CIRCO.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .scenes import BACKGROUNDS, COLOURS, SHAPES, SIZES, Obj, Scene, plural

KINDS = ("colour", "shape", "move", "remove", "add", "count", "background")


@dataclasses.dataclass(frozen=True)
class Edit:
    kind: str
    target: Obj | None = None  # the object the edit is about (colour, shape, move, remove, count)
    value: str | None = None  # new colour / shape / position / background, or "colour shape" to add

    def text(self) -> str:
        t = self.target
        if self.kind == "colour":
            return f"make the {t.phrase()} {self.value}"
        if self.kind == "shape":
            return f"turn the {t.phrase()} into a {self.value}"
        if self.kind == "move":
            return f"move the {t.phrase()} to the {self.value}"
        if self.kind == "remove":
            return f"remove the {t.phrase()}"
        if self.kind == "add":
            return f"add a {self.value}"
        if self.kind == "count":
            return f"there should be two {t.colour} {plural(t.shape)}"
        return f"change the background to {self.value}"


def valid_targets(ref: Scene, edit: Edit) -> frozenset[Scene]:
    """Every (canonical) scene that fulfils ``edit`` applied to ``ref``."""
    others = tuple(o for o in ref.objects if o != edit.target)
    out: list[Scene] = []
    if edit.kind in ("colour", "shape", "move"):
        field = {"colour": "colour", "shape": "shape", "move": "position"}[edit.kind]
        out.append(Scene(ref.background, others + (dataclasses.replace(edit.target, **{field: edit.value}),)))
    elif edit.kind == "remove":
        out.append(Scene(ref.background, others))
    elif edit.kind == "background":
        out.append(Scene(edit.value, ref.objects))
    else:  # add / count: any size, any free position
        colour, shape = (edit.value.split(" ") if edit.kind == "add" else (edit.target.colour, edit.target.shape))
        for size in SIZES:
            for pos in ref.free_positions():
                out.append(Scene(ref.background, ref.objects + (Obj(shape, colour, size, pos),)))
    return frozenset(s.canonical() for s in out)


def _unique_targets(ref: Scene) -> list[Obj]:
    phrases = [o.phrase() for o in ref.objects]
    return [o for o in ref.objects if phrases.count(o.phrase()) == 1]


def random_edit(ref: Scene, rng: np.random.Generator, kinds: tuple[str, ...] = KINDS) -> Edit | None:
    """A random applicable edit of ``ref`` (None if the drawn kind does not apply)."""
    kind = kinds[rng.integers(len(kinds))]
    targets = _unique_targets(ref)
    pick = lambda seq: seq[rng.integers(len(seq))]  # noqa: E731
    free = ref.free_positions()
    if kind in ("colour", "shape", "move", "remove", "count") and not targets:
        return None
    if kind == "colour":
        t = pick(targets)
        return Edit(kind, t, pick([c for c in COLOURS if c != t.colour]))
    if kind == "shape":
        t = pick(targets)
        return Edit(kind, t, pick([s for s in SHAPES if s != t.shape]))
    if kind == "move":
        return Edit(kind, pick(targets), pick(free)) if free else None
    if kind == "remove":
        return Edit(kind, pick(targets)) if len(ref.objects) > 1 else None
    if kind == "add":
        return Edit(kind, value=f"{pick(list(COLOURS))} {pick(SHAPES)}") if free else None
    if kind == "count":
        t = pick(targets)
        same = sum(1 for o in ref.objects if (o.colour, o.shape) == (t.colour, t.shape))
        return Edit(kind, t) if free and same == 1 else None
    return Edit(kind, value=pick([b for b in BACKGROUNDS if b != ref.background]))


def near_misses(ref: Scene, edit: Edit, rng: np.random.Generator, n: int) -> list[Scene]:
    """Scenes close to the reference that do not fulfil the edit (hard negatives for the six-image subsets)."""
    valid = valid_targets(ref, edit)
    out: list[Scene] = []
    for _ in range(50 * n):
        other = random_edit(ref, rng)
        if other is None:
            continue
        scene = sorted(valid_targets(ref, other))[0]
        if scene not in valid and scene != ref.canonical() and scene not in out:
            out.append(scene)
        if len(out) == n:
            break
    return out
