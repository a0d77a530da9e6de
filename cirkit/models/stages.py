"""Model calls as cached stages: resolve who answers, then one cached response per request."""

from __future__ import annotations

import dataclasses
import functools
import os

from ..data.filehash import FileDigests
from ..engine import stage
from .config import BackendConfig, BackendError, BackendIdentity
from .requests import ChatRequest, ChatResponse, request_identity

__all__ = ["resolve_backend", "chat", "make_backend"]


@stage(version=1, volatile=True)
def resolve_backend(config: BackendConfig, folder: str | None) -> BackendIdentity:
    """Ask the backend who it is: the server's model entry, or the content digest of a local folder.

    ``folder`` (an upstream artifact, e.g. an exported checkpoint) replaces ``config.model`` for local kinds."""
    if config.kind == "openai":
        from .backends.openai_compat import list_models, server_snapshot

        if config.snapshot:
            return BackendIdentity("openai", config.model, config.snapshot)
        return BackendIdentity("openai", config.model, server_snapshot(config.model, list_models(config)))
    path = folder or config.model
    if not os.path.isdir(path):
        raise BackendError(f"{path}: backend.model must be a local folder for kind {config.kind!r}")
    return BackendIdentity(config.kind, os.path.basename(os.path.normpath(path)),
                           config.snapshot or FileDigests().folder_digest(path), substitute=config.kind == "clip",
                           location=os.path.abspath(path))


@functools.lru_cache(maxsize=4)
def make_backend(config: BackendConfig, location: str = ""):
    """One live backend per config in a process (loading a model once, keeping one HTTP client)."""
    if location:
        config = dataclasses.replace(config, model=location)
    if config.kind == "openai":
        from .backends.openai_compat import OpenAIBackend

        return OpenAIBackend(config)
    if config.kind == "transformers":
        from .backends.local_transformers import TransformersBackend

        return TransformersBackend(config)
    if config.kind == "oracle":
        from .backends.oracle import OracleBackend

        return OracleBackend(config)
    from .backends.clip_substitutes import ClipSubstituteBackend

    return ClipSubstituteBackend(config)


@stage(version=1, over="requests", shard_size=16, item_key=request_identity)
def chat(config: BackendConfig, requests: tuple[ChatRequest, ...], backend: BackendIdentity) -> tuple[ChatResponse, ...]:
    """One response per request, each cached under (backend identity, template, prompt, images, decoding).

    Shards are small, so a server that fails mid-run loses at most 16 answers; the rest stay cached."""
    return tuple(make_backend(config, backend.location).complete(list(requests)))
