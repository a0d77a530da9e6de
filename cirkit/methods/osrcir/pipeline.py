"""OSrCIR as a composition of cached stages: one multimodal call with reflective chain-of-thought (JSON) on
the reference image and the instruction, then CLIP text-to-image retrieval with its target description."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...engine import Engine
from ...experiment.pipeline import pipeline
from ...models.roles import RoleConfig
from ...pipelines.parts import Part, over_parts
from ...pipelines.scoring import notice, require_deep_enough, text_to_image
from ...pipelines.setup import Setup, benchmark_of, clip_substitute, prepare, require_composed, with_oracle_noise
from ...retrieval.stages import RetrievalConfig
from ..common import AnswerTexts, answer_texts, instructions, reference_images

__all__ = ["OSrCIRConfig", "osrcir"]


@dataclasses.dataclass(frozen=True)
class OSrCIRConfig:
    setup: Setup = Setup()
    reasoner: RoleConfig = clip_substitute("osrcir/reflective")  # a multimodal model; CLIP substitute by default
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark
    fallback: Literal["instruction", "caption"] = "instruction"  # a failed answer's target text: the bare
    # instruction (the official behaviour), or the reference caption from ``captioner``
    captioner: RoleConfig = clip_substitute("generic/captioner")  # used only when fallback = "caption"

    def __post_init__(self) -> None:
        require_deep_enough(self)


@pipeline("osrcir", OSrCIRConfig)
def osrcir(engine: Engine, config: OSrCIRConfig) -> dict:
    """OSrCIR: one multimodal call with reflective chain-of-thought (JSON), then CLIP text-to-image retrieval."""
    config = with_oracle_noise(config)
    require_composed("osrcir", config.setup)
    wanted = {"multimodal_reasoner": config.reasoner}
    if config.fallback == "caption":
        wanted["captioner"] = config.captioner
    parts, clip = prepare(engine, config.setup, wanted)

    def body(part: Part) -> dict:
        run, roles = part.engine.run, part.roles
        refs = run(reference_images, None, split=part.split)
        texts = run(instructions, None, split=part.split)
        fallbacks = texts
        if config.fallback == "caption":
            fallbacks = run(answer_texts, AnswerTexts(), answers=roles.caption(config.captioner, refs),
                            step="fallback_captions")
        answers = roles.reason_about_image(config.reasoner, refs, texts, fallbacks=fallbacks)
        targets = run(answer_texts, AnswerTexts("Target Image Description"), answers=answers, step="targets")
        return text_to_image(config.setup, config.retrieval, part, clip, targets, "osrcir")

    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts, body)}
