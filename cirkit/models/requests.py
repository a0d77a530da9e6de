"""What is sent to a model and what comes back, as frozen, hashable values.

A request carries the rendered messages *and* the template's hash and variables, so its cache key covers
(template, rendered prompt, images by content, decoding parameters); the backend's identity (kind, model,
snapshot) is added by the stage that runs it. CLIP substitutes read the variables instead of the prose.
"""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks
from ..data.model import ImageRef
from ..engine import artifact_type

__all__ = ["Message", "ChatRequest", "ChatResponse", "Decoding", "request_identity"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    text: str
    images: tuple[ImageRef, ...] = ()


@artifact_type
@dataclasses.dataclass(frozen=True)
class Decoding:
    """Greedy by default: temperature 0 and a fixed seed."""

    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    want_probability: bool = False  # ask for P(yes) (token log-probabilities) where the backend gives them
    repetition_penalty: float | None = None  # sent where the backend takes it (vLLM, transformers); ImageScope's
    # captioner uses 1.05

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "max_tokens")
        checks.numbers_at_least(self, 0, "temperature")


@artifact_type
@dataclasses.dataclass(frozen=True)
class ChatRequest:
    role: str  # captioner | reasoner | verifier | evaluator | multimodal_reasoner
    template: str  # template name
    template_hash: str
    messages: tuple[Message, ...]
    fields: tuple[tuple[str, str], ...] = ()  # the template variables, for backends that do not read prose
    decoding: Decoding = Decoding()

    def field(self, name: str, default: str = "") -> str:
        return dict(self.fields).get(name, default)

    def images(self) -> tuple[ImageRef, ...]:
        return tuple(im for m in self.messages for im in m.images)


@artifact_type
@dataclasses.dataclass(frozen=True)
class ChatResponse:
    text: str
    model: str  # the model id the backend reports (drift shows here)
    finish_reason: str = ""
    yes_probability: float | None = None
    error: str = ""  # set when the backend answered with something unusable; the run goes on


def request_identity(request: ChatRequest) -> tuple:
    """What a response depends on: images by content (not path), everything else as is."""
    def image_key(im: ImageRef):
        return (im.content or im.path, im.box)

    messages = tuple((m.role, m.text, tuple(image_key(i) for i in m.images)) for m in request.messages)
    return (request.role, request.template, request.template_hash, messages, request.fields, request.decoding)
