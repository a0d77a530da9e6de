"""Per-item cached embedding stages over any registered encoder kind: gallery images, texts (queries,
descriptions, captions) and composed (reference image, text) queries.

The model is a :class:`ModelRef`; its kind picks the encoder from the registry and the kind's declared options
pick the ``EmbedConfig`` fields it is loaded with. A kind's code enters the key through the reference's
``code`` digest, so these stages never name any one model's code.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from .. import config_checks as checks
from ..data.model import ComposedQuery, ImageRef, Split
from ..engine import artifact_type, stage
from .decode import pixel_batches
from .interface import ComposedEncoder, Encoder, ModelRef, encoder_options, load_model, model_ref

__all__ = ["ClipCheckpoint", "clip_checkpoint", "EmbedConfig", "QueryInput", "embed_images", "embed_texts",
           "embed_queries", "composed_inputs", "encoder_for", "reference_model"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class ClipCheckpoint:
    """What ``checkpoint_ref`` stored before encoders became a family, kept only so that stores written then
    still decode (``cirkit diff`` against an old run); :meth:`as_ref` is the same folder as a ``ModelRef``."""

    path: str = dataclasses.field(metadata={"hash": False})
    digest: str

    def as_ref(self) -> ModelRef:
        return ModelRef("clip", self.path, self.digest)


def clip_checkpoint(path: str) -> ModelRef:
    """Reference a CLIPModel directory (config, weights, tokenizer, preprocessor files), memoised by stat."""
    return model_ref("clip", path)


@stage(version=1, volatile=True)
def reference_model(config: None, kind: str, directory: str) -> ModelRef:
    """Reference a model folder as an encoder of ``kind`` (read on every run: its content decides downstream)."""
    return model_ref(kind, directory)


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """How embeddings are computed and stored. ``batch_size`` only changes speed, so it is not in the key.
    ``preprocessing``/``target_ratio`` are read by image kinds (CLIP). A setting of one kind only (the causal
    LM's ``pooling``) is a model option on its :class:`ModelRef` instead (``model_ref(kind, path, pooling=...)``),
    so that it keys that kind's embeddings alone."""

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


@artifact_type
@dataclasses.dataclass(frozen=True)
class QueryInput:
    """One composed query as an encoder sees it: the reference image and the modification text."""

    reference: ImageRef
    text: str


def _finish(config: EmbedConfig, x: np.ndarray) -> np.ndarray:
    if config.normalise:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(config.storage_dtype)


def encoder_for(config: EmbedConfig, model: ModelRef) -> Encoder:
    """The registry's one loaded encoder for ``model``, built with the config fields its kind declares."""
    return load_model(model, **{name: getattr(config, name) for name in encoder_options(model.kind)})


def image_identity(image: ImageRef) -> tuple:
    """What an embedding depends on: the file's content (its path only if it was not hashed) and the crop."""
    return (image.content or image.path, image.box)


def query_identity(query: QueryInput) -> tuple:
    return (image_identity(query.reference), query.text)


def _encode_images(config: EmbedConfig, enc: Encoder, images: tuple[ImageRef, ...]) -> np.ndarray:
    paths, boxes = [im.path for im in images], [im.box for im in images]
    prep, encode_pixels = getattr(enc, "prep", None), getattr(enc, "encode_pixels", None)
    if prep is None or encode_pixels is None:  # an encoder that reads its own files
        return np.asarray(enc.encode_files(paths, boxes), np.float32)
    batches = pixel_batches(paths, boxes, prep, config.batch_size, config.decode_workers)  # decoded in parallel
    return np.concatenate([encode_pixels(px) for px in batches])


@stage(version=3, over="images", shard_size=256, helpers=[_finish, encoder_for], item_key=image_identity)
def embed_images(config: EmbedConfig, images: tuple[ImageRef, ...], model: ModelRef) -> np.ndarray:
    """One embedding row per image (cached per image, keyed by its content hash and crop box)."""
    return _finish(config, _encode_images(config, encoder_for(config, model), images))


@stage(version=2, over="texts", shard_size=1024, helpers=[_finish, encoder_for])
def embed_texts(config: EmbedConfig, texts: tuple[str, ...], model: ModelRef) -> np.ndarray:
    """One embedding row per text (cached per text)."""
    return _finish(config, np.asarray(encoder_for(config, model).encode_texts(list(texts)), np.float32))


@stage(version=1, over="queries", shard_size=256, helpers=[_finish, encoder_for], item_key=query_identity)
def embed_queries(config: EmbedConfig, queries: tuple[QueryInput, ...], model: ModelRef) -> np.ndarray:
    """One embedding row per composed query (cached per query: reference content, crop and text)."""
    enc = encoder_for(config, model)
    if not isinstance(enc, ComposedEncoder):
        raise ValueError(f"encoder kind {model.kind!r} cannot embed composed queries (it has no encode_queries); "
                         "use a kind that implements ComposedEncoder")
    out = enc.encode_queries([q.reference.path for q in queries], [q.text for q in queries],
                             [q.reference.box for q in queries])
    return _finish(config, np.asarray(out, np.float32))


@stage(version=1)
def composed_inputs(config: None, split: Split) -> tuple[QueryInput, ...]:
    """Each composed query of ``split`` with its reference image looked up in the gallery."""
    index = split.gallery.index()
    out = []
    for q in split.queries:
        if not isinstance(q, ComposedQuery):
            raise ValueError(f"{split.benchmark} {split.split}: query {q.id!r} is a {type(q).__name__}; "
                             "embed_queries needs composed queries (a reference image and a text)")
        if q.reference not in index:
            raise ValueError(f"{split.benchmark} {split.split}: query {q.id!r} has reference {q.reference!r}, "
                             "which is not in the gallery")
        out.append(QueryInput(split.gallery.images[index[q.reference]], q.text))
    return tuple(out)
