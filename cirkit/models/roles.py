"""The five model roles as narrow, typed interfaces over cached stages.

Each role call is three stages: build requests from a versioned template (its hash in every key), ``chat``
(one cached response per request, attributed to the backend's model and snapshot), then parse (JSON with
repair and schema checks, or yes/no), recording how many answers fell back.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal, Protocol

from ..data.model import ImageRef
from ..engine import Artifact, Engine, artifact_type, stage
from .config import BackendConfig
from .prompts import PromptConfig, load_template
from .requests import ChatRequest, ChatResponse, Decoding, Message
from .stages import chat, resolve_backend
from .structured import Parsed, parse_final_answer, parse_json, parse_labelled_line, parse_yes_no

__all__ = ["RoleConfig", "RoleInput", "Answers", "build_requests", "parse_answers", "ParseConfig", "call_role",
           "Captioner", "Reasoner", "Verifier", "Evaluator", "MultimodalReasoner", "EngineRoles", "ROLES"]

ROLES = ("captioner", "reasoner", "verifier", "evaluator", "multimodal_reasoner")


@dataclasses.dataclass(frozen=True)
class RoleConfig:
    """One role: who answers (backend), with which template, and how to decode."""

    backend: BackendConfig
    prompt: PromptConfig
    decoding: Decoding = Decoding()


@artifact_type
@dataclasses.dataclass(frozen=True)
class RoleInput:
    """The template variables of one call and the images it shows the model (in order)."""

    fields: tuple[tuple[str, str], ...] = ()
    images: tuple[ImageRef, ...] = ()


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    role: Literal["captioner", "reasoner", "verifier", "evaluator", "multimodal_reasoner"]
    prompt: PromptConfig
    decoding: Decoding = Decoding()


@stage(version=1)
def build_requests(config: BuildConfig, inputs: tuple[RoleInput, ...]) -> tuple[ChatRequest, ...]:
    """Render the template for every input; the template's hash and variables travel with each request."""
    template = load_template(config.prompt)
    out = []
    for item in inputs:
        turns = template.render(**dict(item.fields))
        messages = tuple(Message(role, text) for role, text in turns[:-1]) + (Message("user", turns[-1][1], item.images),)
        out.append(ChatRequest(config.role, template.name, template.hash, messages, item.fields, config.decoding))
    return tuple(out)


@artifact_type
@dataclasses.dataclass(frozen=True)
class Answers:
    """Parsed answers in request order; ``ok[i]`` is False where the fallback was used."""

    values: tuple[Any, ...]
    ok: tuple[bool, ...]
    errors: tuple[str, ...]
    probabilities: tuple[float | None, ...]
    models: tuple[str, ...]

    def cirkit_report(self) -> dict:
        return {"fallbacks": sum(1 for o in self.ok if not o), "answers": len(self.ok),
                "models": ", ".join(sorted(set(self.models)))}


@dataclasses.dataclass(frozen=True)
class ParseConfig:
    kind: Literal["text", "json", "yes_no", "answer_line", "labelled_line"] = "text"  # answer_line: reasoning, then
    # "ANSWER: Yes/No"; labelled_line: the text after "<label>:" up to a blank line, as {required[0]: text}
    required: tuple[str, ...] = ()  # JSON keys that must be present (as strings or lists)
    aliases: tuple[tuple[str, str], ...] = ()  # (key in the answer, key it stands for), e.g. ("step2", "descriptions")
    label: str = ""  # labelled_line: the line's label, e.g. "Edited Description"


def _rename(value: Any, aliases: tuple[tuple[str, str], ...]) -> Any:
    """An answer object with aliased keys under their canonical names (a canonical key present wins)."""
    if not isinstance(value, dict) or not aliases:
        return value
    out = dict(value)
    for alias, canonical in aliases:
        if alias in value and canonical not in value:
            out[canonical] = value[alias]
    return out


@stage(version=1, helpers=[_rename, parse_labelled_line, parse_final_answer])
def parse_answers(config: ParseConfig, responses: tuple[ChatResponse, ...], fallbacks: Any) -> Answers:
    """Parse every response; ``fallbacks`` is one value per response, or one value for all."""
    if not isinstance(fallbacks, (tuple, list)):
        fallbacks = (fallbacks,) * len(responses)
    parsed = []
    for response, fallback in zip(responses, fallbacks):
        if response.error:
            parsed.append(Parsed(fallback, False, response.error))
        elif config.kind == "json":
            p = parse_json(response.text, {}, fallback)
            p = parse_json(json.dumps(_rename(p.value, config.aliases)), {k: (str, list) for k in config.required},
                           fallback) if p.ok else p
            parsed.append(p)
        elif config.kind == "labelled_line":
            p = parse_labelled_line(response.text, config.label, (config.required or ("text",))[0])
            parsed.append(p if p.ok else Parsed(fallback, False, p.error))
        elif config.kind in ("yes_no", "answer_line"):
            p = parse_yes_no(response.text) if config.kind == "yes_no" else parse_final_answer(response.text)
            if response.yes_probability is not None and not p.ok:
                p = Parsed(response.yes_probability >= 0.5, True)
            parsed.append(p if p.ok else Parsed(fallback, False, p.error))
        else:
            text = response.text.strip()
            parsed.append(Parsed(text, True) if text else Parsed(fallback, False, "empty answer"))
    return Answers(tuple(p.value for p in parsed), tuple(p.ok for p in parsed), tuple(p.error for p in parsed),
                   tuple(r.yes_probability for r in responses), tuple(r.model for r in responses))


_PARSE = {"captioner": ParseConfig("text"), "verifier": ParseConfig("yes_no"), "evaluator": ParseConfig("yes_no")}


def call_role(engine: Engine, role: str, config: RoleConfig, inputs: Any, fallbacks: Any, *, name: str,
              parse: ParseConfig | None = None, folder: Any = None) -> Artifact:
    """Wire one role call into a pipeline: requests -> chat (cached per request) -> parsed Answers.

    ``folder`` (an artifact such as an exported checkpoint) is the model folder for local backends."""
    backend = engine.run(resolve_backend, config.backend, folder=folder, step=f"{name}/backend")
    requests = engine.run(build_requests, BuildConfig(role, config.prompt, config.decoding), inputs=inputs,
                          step=f"{name}/requests")
    responses = engine.run(chat, config.backend, requests=requests, backend=backend, step=f"{name}/chat")
    return engine.run(parse_answers, parse or _PARSE.get(role, ParseConfig("json")), responses=responses,
                      fallbacks=fallbacks, step=f"{name}/parse")


@stage(version=1)
def caption_inputs(config: None, images: tuple[ImageRef, ...]) -> tuple[RoleInput, ...]:
    return tuple(RoleInput((), (im,)) for im in images)


@stage(version=1)
def verify_inputs(config: None, images: tuple[ImageRef, ...], questions: tuple[str, ...]) -> tuple[RoleInput, ...]:
    return tuple(RoleInput((("question", q),), (im,)) for im, q in zip(images, questions, strict=True))


@stage(version=1)
def evaluate_inputs(config: None, references: tuple[ImageRef, ...], candidates: tuple[ImageRef, ...],
                    instructions: tuple[str, ...]) -> tuple[RoleInput, ...]:
    return tuple(RoleInput((("instruction", t),), (r, c))
                 for r, c, t in zip(references, candidates, instructions, strict=True))


@stage(version=1)
def reason_inputs(config: None, fields: tuple[dict, ...], images: tuple[ImageRef | None, ...] | None) -> tuple[RoleInput, ...]:
    """``images`` may be None (text-only reasoning) or hold None for queries without an image."""
    images = images if images is not None else (None,) * len(fields)
    return tuple(RoleInput(tuple(sorted((k, str(v)) for k, v in f.items())), (im,) if im is not None else ())
                 for f, im in zip(fields, images, strict=True))


class Captioner(Protocol):
    def caption(self, images: Any) -> Artifact: ...


class Reasoner(Protocol):
    def reason(self, fields: Any, images: Any, fallbacks: Any, required: tuple[str, ...]) -> Artifact: ...


class Verifier(Protocol):
    def verify(self, images: Any, questions: Any) -> Artifact: ...


class Evaluator(Protocol):
    def evaluate(self, references: Any, candidates: Any, instructions: Any) -> Artifact: ...


class MultimodalReasoner(Protocol):
    def reason(self, images: Any, instructions: Any, fallbacks: Any) -> Artifact: ...


@dataclasses.dataclass
class EngineRoles:
    """The five roles wired into an engine: each method adds its stages and returns the Answers artifact.

    Arguments may be artifacts or plain values (tuples), so a pipeline can chain roles without reading values.
    """

    engine: Engine
    folders: dict = dataclasses.field(default_factory=dict)  # role -> model folder artifact (local backends)
    clip: Any = None  # the CLIP checkpoint a method embeds with (set by the method's setup)

    def ask(self, role: str, config: RoleConfig, inputs: Any, *, fallbacks: Any, name: str,
            parse: ParseConfig | None = None, folder: str | None = None) -> Artifact:
        """A role call on prepared inputs (``folder``: whose model folder answers; default the role's own)."""
        return call_role(self.engine, role, config, inputs, fallbacks, name=name, parse=parse,
                         folder=self.folders.get(folder or role))

    def caption(self, config: RoleConfig, images: Any, *, name: str = "captioner") -> Artifact:
        inputs = self.engine.run(caption_inputs, None, images=images, step=f"{name}/inputs")
        return call_role(self.engine, "captioner", config, inputs, "", name=name, folder=self.folders.get("captioner"))

    def reason(self, config: RoleConfig, fields: Any, images: Any = None, *, fallbacks: Any,
               required: tuple[str, ...] = (), name: str = "reasoner", aliases: tuple[tuple[str, str], ...] = (),
               folder: str = "reasoner", parse: ParseConfig | None = None) -> Artifact:
        """``fields``: template variables per call; ``images``: None (text only) or one image (or None) per call;
        ``folder``: which role's model folder answers (ImageScope's ``propositions`` reasoner has its own);
        ``parse``: how answers are read (default: JSON with the ``required`` keys)."""
        inputs = self.engine.run(reason_inputs, None, fields=fields, images=images, step=f"{name}/inputs")
        return call_role(self.engine, "reasoner", config, inputs, fallbacks, name=name,
                         parse=parse or ParseConfig("json", required, aliases), folder=self.folders.get(folder))

    def verify(self, config: RoleConfig, images: Any, questions: Any, *, name: str = "verifier") -> Artifact:
        inputs = self.engine.run(verify_inputs, None, images=images, questions=questions, step=f"{name}/inputs")
        return call_role(self.engine, "verifier", config, inputs, False, name=name, folder=self.folders.get("verifier"))

    def evaluate(self, config: RoleConfig, references: Any, candidates: Any, instructions: Any, *,
                 name: str = "evaluator") -> Artifact:
        inputs = self.engine.run(evaluate_inputs, None, references=references, candidates=candidates,
                                 instructions=instructions, step=f"{name}/inputs")
        return call_role(self.engine, "evaluator", config, inputs, False, name=name, folder=self.folders.get("evaluator"))

    def reason_about_image(self, config: RoleConfig, images: Any, instructions: Any, *, fallbacks: Any,
                           required: tuple[str, ...] = ("Target Image Description",),
                           name: str = "multimodal_reasoner") -> Artifact:
        fields = self.engine.run(_instruction_fields, None, instructions=instructions, step=f"{name}/fields")
        inputs = self.engine.run(reason_inputs, None, fields=fields, images=images, step=f"{name}/inputs")
        return call_role(self.engine, "multimodal_reasoner", config, inputs, fallbacks, name=name,
                         parse=ParseConfig("json", required), folder=self.folders.get("multimodal_reasoner"))


@stage(version=1)
def _instruction_fields(config: None, instructions: tuple[str, ...]) -> tuple[dict, ...]:
    return tuple({"instruction": t} for t in instructions)
