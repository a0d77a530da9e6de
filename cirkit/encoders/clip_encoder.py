"""Batched, jitted CLIP encoders with fixed batch buckets, fp32 or bf16, data-parallel over devices.

Batches are padded up to the next bucket (default 1, 8, 32, 128), so each bucket compiles once and a
ragged last batch never triggers a recompile. With several devices, the batch axis is sharded over them
and parameters are replicated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .clip_image import ImagePrep, open_image, preprocess, read_image_prep
from .clip_model import ClipText, ClipVision
from .clip_text import ClipTokenizer
from .clip_weights import load_clip_params

__all__ = ["ClipEncoder", "load_encoder", "DTYPES"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ClipEncoder:
    def __init__(self, directory: str, dtype: str = "float32", buckets: Sequence[int] = (1, 8, 32, 128),
                 preprocessing: str = "clip", target_ratio: float = 1.25) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        self.directory = directory
        self.config, params, self.logit_scale = load_clip_params(directory)
        self.dtype = DTYPES[dtype]
        n_dev = jax.device_count()
        self.buckets = tuple(sorted({-(-b // n_dev) * n_dev for b in buckets}))
        self.tokenizer = ClipTokenizer(directory, self.config.text.max_position_embeddings)
        self.prep: ImagePrep = read_image_prep(directory, self.config.vision.image_size, preprocessing, target_ratio)
        self._mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",)) if n_dev > 1 else None
        self.params = {k: self._replicate(jax.tree.map(lambda x: jnp.asarray(x, self.dtype), v)) for k, v in params.items()}
        text, vision = ClipText(self.config, self.dtype), ClipVision(self.config, self.dtype)
        self._text = jax.jit(lambda p, ids: text.apply({"params": p}, ids).astype(jnp.float32))
        self._vision = jax.jit(lambda p, px: vision.apply({"params": p}, px).astype(jnp.float32))

    @property
    def dim(self) -> int:
        return self.config.projection_dim

    def _replicate(self, tree):
        if self._mesh is None:
            return tree
        return jax.device_put(tree, jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec()))

    def _shard(self, batch: np.ndarray):
        if self._mesh is None:
            return jnp.asarray(batch)
        return jax.device_put(batch, jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec("data")))

    def _run(self, fn: Callable, params, inputs: np.ndarray) -> np.ndarray:
        out = []
        top = self.buckets[-1]
        for start in range(0, len(inputs), top):
            chunk = inputs[start : start + top]
            bucket = next(b for b in self.buckets if b >= len(chunk))
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], bucket - len(chunk), axis=0)]) if bucket > len(chunk) else chunk
            out.append(np.asarray(fn(params, self._shard(padded)))[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_token_ids(self, ids: np.ndarray) -> np.ndarray:
        return self._run(self._text, self.params["text"], np.asarray(ids, np.int32))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Projected text embeddings (not normalised), float32 (N, projection_dim)."""
        return self.encode_token_ids(self.tokenizer(texts)) if len(texts) else np.zeros((0, self.dim), np.float32)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self._run(self._vision, self.params["vision"], np.asarray(pixels, np.float32))

    def encode_images(self, images) -> np.ndarray:
        """PIL images -> projected image embeddings (not normalised), float32."""
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([preprocess(im, self.prep) for im in images]))

    def encode_files(self, paths: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        """Image files (optionally cropped to ``(x, y, w, h)`` boxes); a bad file raises an error naming it."""
        boxes = boxes or [None] * len(paths)
        return self.encode_images([open_image(p, b) for p, b in zip(paths, boxes)])


@functools.lru_cache(maxsize=2)
def load_encoder(directory: str, digest: str, dtype: str = "float32", preprocessing: str = "clip",
                 target_ratio: float = 1.25) -> ClipEncoder:
    """A process-wide memo of loaded encoders, keyed by the checkpoint's content digest as well as its path."""
    return ClipEncoder(directory, dtype, preprocessing=preprocessing, target_ratio=target_ratio)
