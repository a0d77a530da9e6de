"""Model calls as cached stages: resolve who answers, then one cached response per request."""

from __future__ import annotations

import dataclasses
import os
import threading

from ..data.filehash import FileDigests
from ..engine import digest, provenance, stage
from ..engine.fingerprint import analyse
from .config import BackendConfig, BackendError, BackendIdentity, RequestsFailed
from .requests import ChatRequest, request_identity

__all__ = ["resolve_backend", "chat", "answers", "make_backend", "release_backends"]


@stage(version=1, volatile=True)
def resolve_backend(config: BackendConfig, folder: str | None) -> BackendIdentity:
    """Ask the backend who it is: the server's model entry, or the content digest of a local folder.

    ``folder`` (an upstream artifact, e.g. an exported checkpoint) replaces ``config.model`` for local kinds."""
    runtime = answer_code_digest(config.kind)
    if config.kind == "openai":
        from .backends.openai_compat import list_models, server_snapshot

        snapshot = config.snapshot or server_snapshot(config.model, list_models(config))
        return BackendIdentity("openai", config.model, snapshot, runtime=runtime)
    path = folder or config.model
    if not os.path.isdir(path):
        raise BackendError(f"{path}: backend.model must be a local folder for kind {config.kind!r}")
    return BackendIdentity(config.kind, os.path.basename(os.path.normpath(path)),
                           config.snapshot or FileDigests().folder_digest(path), substitute=config.kind == "clip",
                           location=os.path.abspath(path), runtime=runtime)


def _answer_code(kind: str) -> tuple:
    """The code that decides *what* a backend of ``kind`` answers, as opposed to how answers are delivered
    (retries, timeouts, concurrency): the request body and how a response is read for a server; the whole
    implementation for a backend that computes answers in this process."""
    if kind == "openai":
        from .backends.openai_compat import payload, read_response

        return payload, read_response
    if kind == "transformers":
        from .backends.local_transformers import TransformersBackend

        return (TransformersBackend,)
    if kind == "oracle":
        from .backends.oracle import OracleBackend

        return (OracleBackend,)
    from .backends.clip_substitutes import ClipSubstituteBackend

    return (ClipSubstituteBackend,)


def answer_code_digest(kind: str) -> str:
    """Digest of :func:`_answer_code` (followed transitively) and of the keyed packages it reaches. It enters
    every call's key through the backend identity, because ``chat`` treats the backend as opaque."""
    first, *rest = _answer_code(kind)
    found = analyse(first, rest)
    return digest({"code": found.digest, "packages": provenance.environment(found.packages)})


_BACKENDS: dict[tuple[BackendConfig, str], object] = {}
_BACKENDS_LOCK = threading.Lock()


def make_backend(config: BackendConfig, location: str = ""):
    """One live backend per (config, location) for the life of the process: a model is loaded once and an HTTP
    client kept, however many roles a method uses (ImageScope has five). Never evicted, never reloaded."""
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get((config, location))
        if backend is None:
            backend = _BACKENDS[(config, location)] = _load_backend(config, location)
        return backend


def release_backends() -> None:
    """Forget every live backend (its model is freed once nothing else holds it): for long-lived processes
    that move on to other models, such as a notebook or a test session."""
    with _BACKENDS_LOCK:
        live = list(_BACKENDS.values())
        _BACKENDS.clear()
    for backend in live:
        close = getattr(backend, "close", None)
        if close is not None:
            close()  # a server backend's connections and event loop


def _load_backend(config: BackendConfig, location: str):
    if location:
        config = dataclasses.replace(config, model=location)
    if config.kind == "openai":
        from .backends.openai_compat import OpenAIBackend

        return OpenAIBackend(config)
    if config.kind == "transformers":
        from .backends.local_transformers import TransformersBackend
        from .backends.torch_threads import ThreadLimited

        backend = TransformersBackend(config)
        return ThreadLimited(backend, config.threads) if config.threads else backend
    if config.kind == "oracle":
        from .backends.oracle import OracleBackend

        return OracleBackend(config)
    from .backends.clip_substitutes import ClipSubstituteBackend

    return ClipSubstituteBackend(config)


@stage(version=1, over="requests", shard_size=16, item_key=request_identity, opaque=[make_backend], stream=True)
def chat(config: BackendConfig, requests: tuple[ChatRequest, ...], backend: BackendIdentity):
    """One response per request, each cached under (backend identity, template, prompt, images, decoding).

    A streaming stage: every missing request of the step is handed to the backend at once, which keeps its
    requests in flight across the whole list, and answers are stored in shards of 16 as they arrive. A request
    that fails is never stored; the answers that came back are (also on an interrupt), so a rerun asks only
    for what is missing."""
    yield from answers(make_backend(config, backend.location), requests)


# Requests per ``complete`` call for backends that answer in this process without a ``stream`` of their own.
CHUNK = 16


def answers(live, requests: tuple[ChatRequest, ...]):
    """(position, response) from a live backend: its own ``stream`` where it has one, else ``complete`` over
    chunks of :data:`CHUNK` (the answers of a chunk that failed in part are yielded before the error)."""
    if hasattr(live, "stream"):
        yield from live.stream(requests)
        return
    for start in range(0, len(requests), CHUNK):
        try:
            out = live.complete(list(requests[start : start + CHUNK]))
        except RequestsFailed as failed:
            for i, answer in sorted(failed.answered.items()):
                yield start + i, answer
            raise
        for i, answer in enumerate(out):
            yield start + i, answer
