"""CLIP image preprocessing, step for step like ``CLIPImageProcessor`` (PIL backend), plus CIReVL's targetpad.

clip: resize the shortest side to ``size`` (bicubic), centre-crop ``crop`` x ``crop``, scale to [0, 1],
normalise by mean/std. targetpad: first pad the image with black to an aspect ratio of ``target_ratio``
when it is more elongated than that (CIReVL's default 1.25), then the same steps.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from PIL import Image

from .clip_config import CheckpointError

__all__ = ["ImagePrep", "read_image_prep", "preprocess", "open_image", "ImageDecodeError"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageDecodeError(ValueError):
    """An image file cannot be read; the message names it."""


@dataclasses.dataclass(frozen=True)
class ImagePrep:
    size: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    mode: str = "clip"  # or "targetpad"
    target_ratio: float = 1.25


def read_image_prep(directory: str, size: int, mode: str = "clip", target_ratio: float = 1.25) -> ImagePrep:
    """Settings from ``preprocessor_config.json`` when present, else CLIP's defaults for ``size``."""
    path = os.path.join(directory, "preprocessor_config.json")
    if not os.path.isfile(path):
        return ImagePrep(size, size, mode=mode, target_ratio=target_ratio)
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    s = raw.get("size", size)
    short = s.get("shortest_edge", s.get("height", size)) if isinstance(s, dict) else int(s)
    c = raw.get("crop_size", short)
    crop = c.get("height", short) if isinstance(c, dict) else int(c)
    return ImagePrep(int(short), int(crop), tuple(raw.get("image_mean", OPENAI_MEAN)), tuple(raw.get("image_std", OPENAI_STD)),
                     mode, target_ratio)


def open_image(path: str, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            image = im.convert("RGB")
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: image file not found") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise ImageDecodeError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    if box is not None:
        x, y, w, h = box
        image = image.crop((int(x), int(y), int(x + w), int(y + h)))
    return image


def _target_pad(image: Image.Image, ratio: float) -> Image.Image:
    w, h = image.size
    if max(w, h) / min(w, h) < ratio:
        return image
    side = max(w, h) / ratio
    hp, vp = max(int((side - w) / 2), 0), max(int((side - h) / 2), 0)
    canvas = Image.new("RGB", (w + 2 * hp, h + 2 * vp), (0, 0, 0))
    canvas.paste(image, (hp, vp))
    return canvas


def preprocess(image: Image.Image, prep: ImagePrep) -> np.ndarray:
    """One RGB image -> float32 (3, crop, crop)."""
    if prep.mode == "targetpad":
        image = _target_pad(image, prep.target_ratio)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = prep.size, int(prep.size * long / short)
    image = image.resize((new_short, new_long) if w <= h else (new_long, new_short), Image.Resampling.BICUBIC)
    arr = np.asarray(image).transpose(2, 0, 1)
    _, hh, ww = arr.shape
    if prep.mode == "targetpad":  # torchvision's CenterCrop (CIReVL): Python's round, halves to even
        top, left = int(round((hh - prep.crop) / 2.0)), int(round((ww - prep.crop) / 2.0))
    else:  # CLIPImageProcessor: floor
        top, left = (hh - prep.crop) // 2, (ww - prep.crop) // 2
    if top < 0 or left < 0:  # smaller than the crop: zero-pad around it, as the reference does
        padded = np.zeros((3, max(hh, prep.crop), max(ww, prep.crop)), arr.dtype)
        ph, pw = -(-(padded.shape[1] - hh) // 2), -(-(padded.shape[2] - ww) // 2)
        padded[:, ph : ph + hh, pw : pw + ww] = arr
        arr, top, left = padded, (padded.shape[1] - prep.crop) // 2, (padded.shape[2] - prep.crop) // 2
    arr = arr[:, top : top + prep.crop, left : left + prep.crop]
    scaled = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.asarray(prep.mean, np.float32)[:, None, None]
    std = np.asarray(prep.std, np.float32)[:, None, None]
    return (scaled - mean) / std
