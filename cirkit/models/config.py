"""Backend settings and identity. Secrets never enter keys or records; the model snapshot always does."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .. import config_checks as checks
from ..engine import artifact_type

__all__ = ["BackendConfig", "BackendIdentity", "BackendError", "RequestsFailed"]


class BackendError(RuntimeError):
    """A backend could not be reached or keeps failing; the message says where and why."""


class RequestsFailed(BackendError):
    """Some requests of a batch failed (the message is the first failure); ``answered`` maps the position of
    every request that did get an answer to that answer, so the caller can keep them."""

    def __init__(self, first: BackendError, answered: dict) -> None:
        super().__init__(str(first))
        self.answered = answered


@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """``kind``: ``openai`` (any OpenAI-compatible server: vLLM, SGLang, llama.cpp, Ollama, transformers serve,
    hosted APIs), ``transformers`` (a local model folder), ``clip`` (CLIP-based substitutes for the vision
    roles, labelled as such) or ``oracle`` (ground truth of the built-in benchmark folder, wrong with
    probability ``noise``). Fields marked ``hash: False`` change how, not what, is computed."""

    kind: Literal["openai", "transformers", "clip", "oracle"] = "openai"
    model: str = ""  # model id (openai), or a local folder (transformers, clip)
    snapshot: str = ""  # pin a revision explicitly; it is part of every cache key
    noise: float = 0.0  # oracle only: probability of a wrong answer (seeded by decoding.seed)
    base_url: str = dataclasses.field(default="", metadata={"hash": False})  # else $CIRKIT_BASE_URL / $OPENAI_BASE_URL
    api_key: str = dataclasses.field(default="", metadata={"hash": False, "secret": True})  # else $OPENAI_API_KEY
    max_in_flight: int = dataclasses.field(default=4, metadata={"hash": False})
    timeout: float = dataclasses.field(default=600.0, metadata={"hash": False})  # per request, all attempts
    retries: int = dataclasses.field(default=4, metadata={"hash": False})
    backoff: float = dataclasses.field(default=0.5, metadata={"hash": False})
    batch_size: int = dataclasses.field(default=8, metadata={"hash": False})
    # local backends: most padded prompt + new tokens in one batch (bounds the key/value cache and attention)
    batch_tokens: int = dataclasses.field(default=4096, metadata={"hash": False})
    # local transformers backend: torch's intra-op threads while it generates (0: torch's default, one per core).
    # On a shared machine fewer threads than cores can be much faster (measured once, at load 4-10: SmolLM2 on 2
    # cores generated 2.0 tokens/s with 2 threads and 12.1 with 1). Like batch_size, it can change float rounding.
    threads: int = dataclasses.field(default=0, metadata={"hash": False})

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "max_in_flight", "batch_size", "batch_tokens")
        checks.integers_at_least(self, 0, "retries", "threads")
        checks.numbers_at_least(self, 0, "timeout", strict=True)
        checks.numbers_at_least(self, 0, "backoff")


@artifact_type
@dataclasses.dataclass(frozen=True)
class BackendIdentity:
    """Who answers: part of every call's key, so another model or snapshot is a miss (and shows as drift)."""

    kind: str
    model: str
    snapshot: str
    substitute: bool = False  # CLIP stand-ins for vision-language models
    location: str = dataclasses.field(default="", metadata={"hash": False})  # the folder a local backend loads
    runtime: str = ""  # digest of the code (and library versions) that decide the answers; see models.stages
