"""CIReVL as a composition of cached stages: caption the reference, rewrite the caption with the instruction
(an LLM), retrieve with CLIP text-to-image. Every paper knob is a config field."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...engine import Engine
from ...experiment.pipeline import pipeline
from ...models.roles import ParseConfig, RoleConfig
from ...pipelines.parts import Part, over_parts
from ...pipelines.scoring import notice, require_deep_enough, text_to_image
from ...pipelines.setup import (
    Setup,
    benchmark_of,
    clip_substitute,
    embedded_llm,
    prepare,
    require_composed,
    with_oracle_noise,
)
from ...retrieval.stages import RetrievalConfig
from ..common import AnswerTexts, FieldNames, answer_texts, instructions, reference_images, zip_fields

__all__ = ["CIReVLConfig", "cirevl"]


@dataclasses.dataclass(frozen=True)
class CIReVLConfig:
    setup: Setup = Setup()
    captioner: RoleConfig = clip_substitute("generic/captioner")
    reasoner: RoleConfig = embedded_llm("cirevl/rewrite", 80)
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark
    answer_format: Literal["json", "edited_description"] = "json"  # official: an "Edited Description:" line
    # (with a prompt asking for it, e.g. cirevl/rewrite_edited; the answer is cut at its first blank line)

    def __post_init__(self) -> None:
        require_deep_enough(self)


_PARSE = {"json": ParseConfig("json", ("target",)),
          "edited_description": ParseConfig("labelled_line", ("target",), label="Edited Description")}


@pipeline("cirevl", CIReVLConfig)
def cirevl(engine: Engine, config: CIReVLConfig) -> dict:
    """CIReVL: caption the reference, rewrite the caption with the instruction (LLM), CLIP text-to-image."""
    config = with_oracle_noise(config)
    require_composed("cirevl", config.setup)
    parts, clip = prepare(engine, config.setup, {"captioner": config.captioner, "reasoner": config.reasoner})

    def body(part: Part) -> dict:
        run, roles = part.engine.run, part.roles
        refs = run(reference_images, None, split=part.split)
        texts = run(instructions, None, split=part.split)
        captions = run(answer_texts, AnswerTexts(), answers=roles.caption(config.captioner, refs), step="captions")
        fields = run(zip_fields, FieldNames(("reference", "instruction")), columns=(captions, texts))
        rewrites = roles.reason(config.reasoner, fields, fallbacks=captions, parse=_PARSE[config.answer_format])
        targets = run(answer_texts, AnswerTexts("target"), answers=rewrites, step="targets")
        return text_to_image(config.setup, config.retrieval, part, clip, targets, "cirevl")

    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts, body)}
