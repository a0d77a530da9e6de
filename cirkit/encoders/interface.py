"""Encoders as a family: one protocol (texts -> vectors, images -> vectors, optionally composed queries ->
vectors) and a registry from a model reference (kind, path, content digest) to a loaded encoder.

CLIP is one kind; cirkit's causal LM with pooled hidden states is another. Kinds are named by import path,
so this module imports no model code until an encoder of that kind is asked for. A loaded encoder is
memoised by the reference *and* its options, so stages that share a model share one copy of its weights.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..engine import artifact_type

__all__ = ["Encoder", "ComposedEncoder", "ModelRef", "register_encoder", "encoder_kinds", "load_model", "release_encoders"]


@runtime_checkable
class Encoder(Protocol):
    """Texts and images to float32 vectors ``[n, dim]`` in one space (not normalised)."""

    @property
    def dim(self) -> int: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_files(self, paths: Sequence[str], boxes: Sequence | None = None) -> np.ndarray: ...


@runtime_checkable
class ComposedEncoder(Encoder, Protocol):
    """A multimodal encoder that also embeds (reference image, modification text) queries."""

    def encode_queries(self, paths: Sequence[str], texts: Sequence[str],
                       boxes: Sequence | None = None) -> np.ndarray: ...


@artifact_type
@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A model folder identified by its kind and content: moving the folder invalidates nothing."""

    kind: str
    path: str = dataclasses.field(metadata={"hash": False})
    digest: str


_KINDS: dict[str, str | Callable[..., Encoder]] = {
    "clip": "cirkit.encoders.clip_encoder:ClipEncoder",
    "causal_lm": "cirkit.lm.encoder:LMTextEncoder",
}


def register_encoder(kind: str, loader: str | Callable[..., Encoder]) -> None:
    """Make ``kind`` loadable: ``loader(path, **options)`` (or its ``"module:name"``) returns an :class:`Encoder`."""
    _KINDS[kind] = loader


def encoder_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def _resolve(kind: str) -> Callable[..., Encoder]:
    if kind not in _KINDS:
        raise ValueError(f"model kind {kind!r} is not registered; known kinds: {', '.join(encoder_kinds())}")
    loader = _KINDS[kind]
    if isinstance(loader, str):
        module, name = loader.split(":")
        loader = getattr(importlib.import_module(module), name)
    return loader


def release_encoders() -> None:
    """Forget the encoders loaded through the registry (long-lived processes moving on to other models)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=4)
def _load(ref: ModelRef, options: tuple) -> Encoder:
    return _resolve(ref.kind)(ref.path, **dict(options))


def load_model(ref: ModelRef, **options) -> Encoder:
    """The encoder for ``ref`` with ``options`` (dtype, pooling, ...), loaded once per process."""
    return _load(ref, tuple(sorted(options.items())))
