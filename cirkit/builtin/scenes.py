"""Scenes of coloured shapes: the vocabulary, rendering with Pillow, and captions.

A scene is a background and one to three objects, each with a shape, colour, size and one of five
positions (no two objects share a position). Everything is a frozen dataclass, so scenes hash and compare
by value; a scene's canonical form sorts its objects, so object order never matters.
"""

from __future__ import annotations

import dataclasses
import io
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
           "purple": (140, 60, 180), "orange": (245, 140, 30)}
BACKGROUNDS = {"white": (245, 245, 245), "gray": (128, 128, 128), "black": (20, 20, 20), "sand": (220, 200, 150),
               "sky": (150, 200, 240)}
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
_CENTRES = {"top left": (0.25, 0.25), "top right": (0.75, 0.25), "bottom left": (0.25, 0.75),
            "bottom right": (0.75, 0.75), "center": (0.5, 0.5)}
_RADIUS = {"small": 0.09, "large": 0.17}
PLURAL = {"cross": "crosses"}
NUMBERS = {1: "a", 2: "two", 3: "three"}


@dataclasses.dataclass(frozen=True, order=True)
class Obj:
    shape: str
    colour: str
    size: str
    position: str

    def phrase(self, with_size: bool = True) -> str:
        return f"{self.size + ' ' if with_size else ''}{self.colour} {self.shape}"


@dataclasses.dataclass(frozen=True, order=True)
class Scene:
    background: str
    objects: tuple[Obj, ...]

    def canonical(self) -> Scene:
        return Scene(self.background, tuple(sorted(self.objects)))

    def free_positions(self) -> list[str]:
        used = {o.position for o in self.objects}
        return [p for p in POSITIONS if p not in used]


def plural(shape: str) -> str:
    return PLURAL.get(shape, shape + "s")


def caption(scene: Scene) -> str:
    """'two small red circles at the top left and center and a large blue square at the bottom right on a gray
    background' (objects grouped by size, colour and shape, in a fixed order)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for o in sorted(scene.objects, key=lambda o: (POSITIONS.index(o.position))):
        groups.setdefault((o.size, o.colour, o.shape), []).append(o.position)
    parts = []
    for (size, colour, shape), where in groups.items():
        n = len(where)
        noun = shape if n == 1 else plural(shape)
        parts.append(f"{NUMBERS[n]} {size} {colour} {noun} at the {' and '.join(where)}")
    return f"{' and '.join(parts)} on a {scene.background} background"


def counts(scene: Scene) -> Counter:
    return Counter((o.colour, o.shape) for o in scene.objects)


def random_object(rng: np.random.Generator, position: str) -> Obj:
    return Obj(SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))],
               SIZES[rng.integers(len(SIZES))], position)


def random_scene(rng: np.random.Generator, max_objects: int = 3) -> Scene:
    n = int(rng.integers(1, max_objects + 1))
    positions = rng.choice(len(POSITIONS), size=n, replace=False)
    objects = tuple(random_object(rng, POSITIONS[p]) for p in positions)
    return Scene(list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))], objects).canonical()


def render(scene: Scene, size: int = 64, jitter_seed: int | None = None) -> Image.Image:
    """Draw the scene; ``jitter_seed`` shifts objects by a pixel or two so that equal scenes differ slightly."""
    image = Image.new("RGB", (size, size), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(jitter_seed) if jitter_seed is not None else None
    for o in scene.objects:
        cx, cy = (c * size for c in _CENTRES[o.position])
        if rng is not None:
            cx, cy = cx + rng.uniform(-1.5, 1.5), cy + rng.uniform(-1.5, 1.5)
        r = _RADIUS[o.size] * size
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif o.shape == "square":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif o.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        elif o.shape == "diamond":
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
        else:  # cross
            w = r / 2.5
            draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
            draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
