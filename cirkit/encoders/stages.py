"""Per-item cached CLIP embedding stages: gallery images and texts (queries, descriptions, captions)."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import numpy as np

from .. import config_checks as checks
from ..data.filehash import FileDigests
from ..data.model import ImageRef
from ..engine import artifact_type, stage
from .clip_encoder import load_encoder
from .decode import pixel_batches

__all__ = ["ClipCheckpoint", "clip_checkpoint", "EmbedConfig", "embed_images", "embed_texts"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class ClipCheckpoint:
    """A checkpoint directory identified by its content: moving it does not invalidate anything."""

    path: str = dataclasses.field(metadata={"hash": False})
    digest: str


def clip_checkpoint(path: str) -> ClipCheckpoint:
    """Fingerprint a CLIPModel directory (config, weights, tokenizer, preprocessor files), memoised by stat."""
    return ClipCheckpoint(os.path.abspath(path), FileDigests().folder_digest(path))


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """How embeddings are computed and stored. ``batch_size`` only changes speed, so it is not in the key."""

    dtype: Literal["float32", "bfloat16"] = "float32"
    storage_dtype: Literal["float32", "float16"] = "float32"
    preprocessing: Literal["clip", "targetpad"] = "clip"
    target_ratio: float = 1.25
    normalise: bool = True
    batch_size: int = dataclasses.field(default=32, metadata={"hash": False})
    decode_workers: int = dataclasses.field(default=0, metadata={"hash": False})  # 0: one per core (at most 8)

    def __post_init__(self) -> None:
        checks.numbers_at_least(self, 0, "target_ratio", strict=True)
        checks.integers_at_least(self, 1, "batch_size")


def _finish(config: EmbedConfig, x: np.ndarray) -> np.ndarray:
    if config.normalise:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(config.storage_dtype)


def _encoder(config: EmbedConfig, model: ClipCheckpoint):
    return load_encoder(model.path, model.digest, config.dtype, config.preprocessing, config.target_ratio)


def image_identity(image: ImageRef) -> tuple:
    """What an embedding depends on: the file's content (its path only if it was not hashed) and the crop."""
    return (image.content or image.path, image.box)


@stage(version=2, over="images", shard_size=256, helpers=[_finish, _encoder], item_key=image_identity)
def embed_images(config: EmbedConfig, images: tuple[ImageRef, ...], model: ClipCheckpoint) -> np.ndarray:
    """One embedding row per image (cached per image, keyed by its content hash and crop box)."""
    enc = _encoder(config, model)
    batches = pixel_batches([im.path for im in images], [im.box for im in images], enc.prep, config.batch_size,
                            config.decode_workers)
    return _finish(config, np.concatenate([enc.encode_pixels(px) for px in batches]))


@stage(version=1, over="texts", shard_size=1024, helpers=[_finish, _encoder])
def embed_texts(config: EmbedConfig, texts: tuple[str, ...], model: ClipCheckpoint) -> np.ndarray:
    """One embedding row per text (cached per text)."""
    return _finish(config, _encoder(config, model).encode_texts(list(texts)))
