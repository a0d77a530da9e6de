"""LDRE / SEIZE as a composition of cached stages: N sampled captions of the reference (captioner, seeds
``seed .. seed+N-1``), M rewrites of each with the instruction (reasoner, seeds ``seed .. seed+M-1``), every
text embedded, one ensembled query (``stages.py``), CLIP retrieval. Caption i and rewrite (i, j) are their own
steps, so growing N or M recomputes only the new ones. ``published`` replaces both model roles with a
published caption/rewrite file (``published.py``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ... import config_checks as checks
from ...encoders.stages import embed_texts
from ...engine import Engine
from ...experiment.pipeline import pipeline
from ...models.roles import ParseConfig, RoleConfig
from ...pipelines.parts import Part, over_parts
from ...pipelines.scoring import embedded_gallery, notice, require_deep_enough, score
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
from .published import ColumnConfig, PublishedConfig, published_column, read_published
from .stages import EnsembleConfig, ensemble_queries

__all__ = ["LDREConfig", "ldre"]


@dataclasses.dataclass(frozen=True)
class LDREConfig:
    setup: Setup = Setup()
    captioner: RoleConfig = clip_substitute("ldre/captioner")  # sampled: caption i uses decoding.seed + i
    reasoner: RoleConfig = embedded_llm("ldre/rewrite", 80)  # rewrite j of a caption uses decoding.seed + j
    captions: int = 15  # N sampled captions per reference (LDRE: 15)
    rewrites: int = 1  # M rewrites per caption (LDRE's published files: 1)
    ensemble: EnsembleConfig = EnsembleConfig()
    answer_format: Literal["json", "edited_description"] = "json"  # edited_description: with ldre/divergent
    published: str = ""  # a published LDRE-style file of captions and rewrites: no model is called
    published_captions_key: str = "multi_caption_opt"
    published_rewrites_key: str = "multi_gpt-3.5_opt"
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark

    def __post_init__(self) -> None:
        require_deep_enough(self)
        checks.integers_at_least(self, 1, "captions", "rewrites")
        if self.answer_format not in _PARSE:
            checks.fail(self, "answer_format", "'json' or 'edited_description'", self.answer_format)


_PARSE = {"json": ParseConfig("json", ("target",)),
          "edited_description": ParseConfig("labelled_line", ("target",), label="Edited Description")}


def _seeded(role: RoleConfig, offset: int) -> RoleConfig:
    return dataclasses.replace(role, decoding=dataclasses.replace(role.decoding, seed=role.decoding.seed + offset))


@pipeline("ldre", LDREConfig)
def ldre(engine: Engine, config: LDREConfig) -> dict:
    """LDRE/SEIZE: N sampled captions x M LLM rewrites, embedded and ensembled (mean or LDRE's weights, SEIZE's
    increment), CLIP text-to-image; or the same from a published caption/rewrite file without any model."""
    config = with_oracle_noise(config)
    require_composed("ldre", config.setup)
    roles = {} if config.published else {"captioner": config.captioner, "reasoner": config.reasoner}
    parts, clip = prepare(engine, config.setup, roles)
    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts,
                                                  lambda part: _part(config, part, clip))}


def _part(config: LDREConfig, part: Part, clip) -> dict:
    run, roles, embed = part.engine.run, part.roles, config.setup.embed
    texts = run(instructions, None, split=part.split)
    if config.published:
        table = run(read_published, PublishedConfig(config.published, config.published_captions_key,
                                                    config.published_rewrites_key), split=part.split, step="published")
    else:
        refs = run(reference_images, None, split=part.split)
    rewrites, captions = [], []
    for i in range(config.captions):
        if config.published:
            caption = run(published_column, ColumnConfig("captions", i), texts=table, step=f"caption{i}/texts")
        else:
            answers = roles.caption(_seeded(config.captioner, i), refs, name=f"caption{i}")
            caption = run(answer_texts, AnswerTexts(), answers=answers, step=f"caption{i}/texts")
        caption_emb = run(embed_texts, embed, texts=caption, model=clip, step=f"caption{i}/embed")
        fields = run(zip_fields, FieldNames(("reference", "instruction")), columns=(caption, texts),
                     step=f"caption{i}/fields")
        for j in range(config.rewrites):
            name = f"rewrite{i}.{j}"
            if config.published:
                target = run(published_column, ColumnConfig("rewrites", i, j), texts=table, step=f"{name}/texts")
            else:
                answers = roles.reason(_seeded(config.reasoner, j), fields, fallbacks=caption, name=name,
                                       parse=_PARSE[config.answer_format])
                target = run(answer_texts, AnswerTexts("target"), answers=answers, step=f"{name}/texts")
            rewrites.append(run(embed_texts, embed, texts=target, model=clip, step=f"{name}/embed"))
            captions.append(caption_emb)
    gallery = embedded_gallery(config.setup, part, clip)
    queries = run(ensemble_queries, config.ensemble, rewrites=tuple(rewrites), captions=tuple(captions),
                  gallery=gallery, step="ensemble")
    _, outputs = score(config.setup, config.retrieval, part, queries, gallery, "ldre")
    return outputs
