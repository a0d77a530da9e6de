"""The frozen vision tower: a CLIP checkpoint's vision transformer returning every token's last-layer state (or a
LLaVA-NeXT or Qwen2-VL folder's visual pathway, ``open_vision``).

Frozen means its output is a pure function of the image, so a method computes the features once per image
(a cached, per-item stage) and trains on them; the tower never runs inside a training step.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..encoders.clip_config import CheckpointError
from ..encoders.clip_image import open_image, preprocess, read_image_prep
from ..encoders.clip_model import ClipVision
from ..encoders.clip_weights import load_clip_params
from ..lm.vlm_folders import folder_type
from .llava_next import LlavaNextVision
from .qwen2_vl import Qwen2VLVision

__all__ = ["VisionTower", "load_vision", "open_vision"]


class VisionTower:
    def __init__(self, directory: str, batch_size: int = 32) -> None:
        self.directory, self.batch_size = directory, batch_size
        self.config, params, _ = load_clip_params(directory)
        self.params = params["vision"]
        self.prep = read_image_prep(directory, self.config.vision.image_size, "clip", 1.25)
        module = ClipVision(self.config, jnp.float32, states=True)
        self._states = jax.jit(lambda p, px: module.apply({"params": p}, px))

    @property
    def dim(self) -> int:
        return self.config.vision.hidden_size

    @property
    def tokens(self) -> int:
        return (self.config.vision.image_size // self.config.vision.patch_size) ** 2 + 1

    def states_of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        out = [np.asarray(self._states(self.params, jnp.asarray(pixels[i:i + self.batch_size])))
               for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.tokens, self.dim), np.float32)

    def states_of_files(self, paths: Sequence[str]) -> np.ndarray:
        """Image files -> ``[n, tokens, dim]`` float32; a bad file raises an error naming it."""
        if not len(paths):
            return np.zeros((0, self.tokens, self.dim), np.float32)
        return self.states_of_pixels(np.stack([preprocess(open_image(p, None), self.prep) for p in paths]))


def open_vision(directory: str):
    """The frozen tower of a folder: a CLIPModel's vision transformer, a LLaVA-NeXT folder's visual pathway (tower
    at its feature layer + pretrained projector, ``llava_next.py``) or a Qwen2-VL folder's vision transformer up to
    its patch merger (``qwen2_vl.py``). Qwen2.5-VL's tower is not implemented: such a folder fails here."""
    kind = folder_type(directory)
    if kind == "llava_next":
        return LlavaNextVision(directory)
    if kind == "qwen2_vl":
        return Qwen2VLVision(directory)
    if kind is not None:
        raise CheckpointError(f"{directory}: a {kind} folder's vision transformer (window attention, RMSNorm, SwiGLU "
                              "blocks) is not implemented in cirkit; its language model is read (name the folder as "
                              "`llm`), but the vision tower must be a CLIPModel, LLaVA-NeXT or Qwen2-VL folder "
                              "(setup.data.clip)")
    return VisionTower(directory)


@functools.lru_cache(maxsize=2)
def load_vision(directory: str, digest: str):
    """One loaded tower per checkpoint content (the digest keeps a replaced folder from being reused)."""
    return open_vision(directory)
