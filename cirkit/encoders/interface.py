"""Encoders as a family: one protocol (texts -> vectors, images -> vectors, optionally composed queries ->
vectors) and a registry from a model reference (kind, path, content digest) to a loaded encoder.

CLIP is one kind; cirkit's causal LM with pooled hidden states is another; a trained method adds its own with
:func:`register_encoder`. Kinds are named by import path, so this module imports no model code until an
encoder of that kind is asked for. A loaded encoder is memoised by the reference *and* its options, so
stages and substitutes that share a model share one copy of its weights.

A reference names what computes a vector: the folder's content digest, the digest of the kind's code
(its loader, followed transitively like a stage's code), so editing a registered kind's model code
invalidates what it embedded even though the generic stages never name that code, and the kind's own model
options (the causal LM's ``pooling``): those live on the reference, not in the embedding stages' shared
``EmbedConfig``, so changing one re-embeds with that kind only.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..engine import artifact_type, digest, provenance
from ..engine.fingerprint import analyse

__all__ = ["Encoder", "ComposedEncoder", "ModelRef", "register_encoder", "encoder_kinds", "encoder_options",
           "model_options", "model_ref", "load_model", "release_encoders", "kind_code_digest"]


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
    """A model folder identified by its kind, its content and its kind's code: moving the folder invalidates
    nothing. ``code`` is "" for a reference built by hand (then only the stages' own code is keyed)."""

    kind: str
    path: str = dataclasses.field(metadata={"hash": False})
    digest: str
    code: str = ""
    options: tuple = ()  # the kind's model options as sorted (name, value) pairs (see ``model_ref``)


@dataclasses.dataclass(frozen=True)
class _Kind:
    loader: str | Callable[..., Encoder]
    options: tuple[str, ...]
    model_options: tuple[tuple[str, object], ...] = ()  # (name, default)


_KINDS: dict[str, _Kind] = {
    "clip": _Kind("cirkit.encoders.clip_encoder:ClipEncoder", ("dtype", "preprocessing", "target_ratio")),
    "causal_lm": _Kind("cirkit.lm.encoder:LMTextEncoder", ("dtype",), (("pooling", "mean"),)),
    "cir_lvlm": _Kind("cirkit.methods.cir_lvlm.encoder:LVLMEncoder", ("dtype",)),
    "cir_cot": _Kind("cirkit.methods.cir_cot.encoder:CoTEncoder", ("dtype",)),
}


def register_encoder(kind: str, loader: str | Callable[..., Encoder], options: Sequence[str] = ("dtype",),
                     model_options: Mapping[str, object] | None = None) -> None:
    """Make ``kind`` loadable: ``loader(path, **options, **model_options)`` (or its ``"module:name"``) returns
    an :class:`Encoder`.

    ``options`` names the fields of the embedding stages' ``EmbedConfig`` this kind is built with (dtype,
    preprocessing, ...); the stages pass exactly those, so one loaded copy serves every caller.
    ``model_options`` are settings only this kind has (name -> default, e.g. a causal LM's ``pooling``): they
    are given to :func:`model_ref` and travel on the reference, so they key this kind's embeddings only."""
    _KINDS[kind] = _Kind(loader, tuple(options), tuple(sorted((model_options or {}).items())))
    _code.cache_clear()


def encoder_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def _kind(kind: str) -> _Kind:
    if kind not in _KINDS:
        raise ValueError(f"model kind {kind!r} is not registered; known kinds: {', '.join(encoder_kinds())}")
    return _KINDS[kind]


def encoder_options(kind: str) -> tuple[str, ...]:
    """The ``EmbedConfig`` fields an encoder of ``kind`` is loaded with."""
    return _kind(kind).options


def model_options(kind: str, **given) -> tuple[tuple[str, object], ...]:
    """``kind``'s model options with ``given`` in place of the defaults, as sorted (name, value) pairs."""
    defaults = dict(_kind(kind).model_options)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"encoder kind {kind!r} has no model option {unknown[0]!r} (its options: {allowed})")
    return tuple(sorted({**defaults, **given}.items()))


def _resolve(kind: str) -> Callable[..., Encoder]:
    loader = _kind(kind).loader
    if isinstance(loader, str):
        module, name = loader.split(":")
        loader = getattr(importlib.import_module(module), name)
    return loader


@functools.cache
def _code(kind: str) -> str:
    found = analyse(_resolve(kind))
    return digest({"kind": kind, "code": found.digest, "packages": provenance.environment(found.packages)})


def kind_code_digest(kind: str) -> str:
    """Digest of the code a kind's loader reaches (memoised per process)."""
    return _code(kind)


def model_ref(kind: str, path: str, **options) -> ModelRef:
    """Reference the model folder ``path`` as an encoder of ``kind``: its content digest (memoised by stat),
    its kind's code digest and its model options (``options`` over the kind's defaults)."""
    from ..data.filehash import FileDigests

    chosen = model_options(kind, **options)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not a model folder (encoder kind {kind!r})")
    return ModelRef(kind, os.path.abspath(path), FileDigests().folder_digest(path), _code(kind), chosen)


def release_encoders() -> None:
    """Forget the encoders loaded through the registry (long-lived processes moving on to other models)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=4)
def _load(kind: str, path: str, digest_: str, options: tuple) -> Encoder:
    return _resolve(kind)(path, **dict(options))


_LOADING = threading.RLock()  # threads must not load the same weights twice; a kind may load another


def load_model(ref: ModelRef, **options) -> Encoder:
    """The encoder for ``ref`` with its model options and ``options`` (dtype, ...; a model option given here
    overrides the reference's), loaded once per process (keyed by the kind, folder, content digest and
    options, not by the code digest: one process runs one version of the code)."""
    chosen = {**dict(model_options(ref.kind, **dict(ref.options))), **options}
    with _LOADING:
        return _load(ref.kind, ref.path, ref.digest, tuple(sorted(chosen.items())))
