"""CIReVL, OSrCIR and ImageScope as short compositions of cached stages.

Every paper knob is a config field; by default they run on the built-in benchmark with the embedded
backends (SmolLM2 as reasoner, CLIP substitutes for the vision roles). ``experiments/paper/`` points the
same pipelines at real benchmarks, CLIP checkpoints and model servers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

from .. import config_checks as checks
from ..builtin.files import export_files
from ..data.errors import DataError
from ..encoders.stages import embed_images, embed_texts
from ..engine import Engine, stage
from ..evaluation.stages import DEFAULT_KS, EvalConfig, evaluate_chat
from ..experiment.pipeline import pipeline
from ..methods.baselines import TextsConfig, gallery_images, query_texts
from ..methods.common import AnswerTexts, FieldNames, answer_texts, instructions, reference_images, zip_fields
from ..methods.imagescope import (
    DescriptionConfig,
    RerankConfig,
    description_counts,
    descriptions,
    group_rows,
    proposition_fields,
    rerank_by_propositions,
    verification_inputs,
)
from ..methods.imagescope_evaluation import (
    PairsConfig,
    RoundConfig,
    evaluator_images,
    nothing_accepted,
    promote_accepted,
    round_inputs,
    stitch_pairs,
    update_accepted,
)
from ..models.roles import ParseConfig, RoleConfig
from ..retrieval.stages import FusionConfig, RetrievalConfig, fuse_gallery, fuse_queries, retrieve
from .parts import Part, over_parts
from .scoring import notice, rank, score, score_reranked
from .setup import Setup, benchmark_of, clip_substitute, embedded_llm, prepare, task_of, with_oracle_noise


def _composed_only(method: str, setup: Setup) -> None:
    if task_of(setup.data) != "composed":
        raise DataError(f"{method} is a composed-retrieval method; setup.data.layout {setup.data.layout!r} is not "
                        f"composed (use cirr, circo, fashioniq or genecis)")


def _text_to_image(setup: Setup, retrieval: RetrievalConfig, part: Part, clip, targets, name: str) -> dict:
    """The shared tail of CIReVL and OSrCIR: embed the target descriptions and rank the gallery with CLIP."""
    engine = part.engine
    queries = engine.run(embed_texts, setup.embed, texts=targets, model=clip, step="embed_targets")
    images = engine.run(gallery_images, None, split=part.split, step="gallery")
    gallery = engine.run(embed_images, setup.embed, images=images, model=clip, step="embed_gallery")
    _, outputs = score(setup, retrieval, part, queries, gallery, name)
    return {**outputs, "targets": targets}


DEEPEST_K = max(k for ks in DEFAULT_KS.values() for k in ks)  # the largest K a benchmark's metrics use


def _deep_enough(config) -> None:
    """Metrics at K deeper than the retrieved list would silently be the metrics at ``retrieval.k``."""
    if config.retrieval.k < DEEPEST_K:
        checks.fail(config, "retrieval.k", f"an integer >= {DEEPEST_K} (the largest K the benchmark metrics report)",
                    config.retrieval.k)


@dataclasses.dataclass(frozen=True)
class CIReVLConfig:
    setup: Setup = Setup()
    captioner: RoleConfig = clip_substitute("generic/captioner")
    reasoner: RoleConfig = embedded_llm("cirevl/rewrite", 80)
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark
    answer_format: Literal["json", "edited_description"] = "json"  # official: an "Edited Description:" line
    # (with a prompt asking for it, e.g. cirevl/rewrite_edited; the answer is cut at its first blank line)

    def __post_init__(self) -> None:
        _deep_enough(self)


_CIREVL_PARSE = {"json": ParseConfig("json", ("target",)),
                 "edited_description": ParseConfig("labelled_line", ("target",), label="Edited Description")}


@pipeline("cirevl", CIReVLConfig)
def cirevl(engine: Engine, config: CIReVLConfig) -> dict:
    """CIReVL: caption the reference, rewrite the caption with the instruction (LLM), CLIP text-to-image."""
    config = with_oracle_noise(config)
    _composed_only("cirevl", config.setup)
    parts, clip = prepare(engine, config.setup, {"captioner": config.captioner, "reasoner": config.reasoner})

    def body(part: Part) -> dict:
        run, roles = part.engine.run, part.roles
        refs = run(reference_images, None, split=part.split)
        texts = run(instructions, None, split=part.split)
        captions = run(answer_texts, AnswerTexts(), answers=roles.caption(config.captioner, refs), step="captions")
        fields = run(zip_fields, FieldNames(("reference", "instruction")), columns=(captions, texts))
        rewrites = roles.reason(config.reasoner, fields, None, captions, ("target",),
                                parse=_CIREVL_PARSE[config.answer_format])
        targets = run(answer_texts, AnswerTexts("target"), answers=rewrites, step="targets")
        return _text_to_image(config.setup, config.retrieval, part, clip, targets, "cirevl")

    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts, body)}


@dataclasses.dataclass(frozen=True)
class OSrCIRConfig:
    setup: Setup = Setup()
    reasoner: RoleConfig = clip_substitute("osrcir/reflective")  # a multimodal model; CLIP substitute by default
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark
    fallback: Literal["instruction", "caption"] = "instruction"  # a failed answer's target text: the bare
    # instruction (the official behaviour), or the reference caption from ``captioner``
    captioner: RoleConfig = clip_substitute("generic/captioner")  # used only when fallback = "caption"

    def __post_init__(self) -> None:
        _deep_enough(self)


@pipeline("osrcir", OSrCIRConfig)
def osrcir(engine: Engine, config: OSrCIRConfig) -> dict:
    """OSrCIR: one multimodal call with reflective chain-of-thought (JSON), then CLIP text-to-image retrieval."""
    config = with_oracle_noise(config)
    _composed_only("osrcir", config.setup)
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
        answers = roles.reason_about_image(config.reasoner, refs, texts, fallbacks)
        targets = run(answer_texts, AnswerTexts("Target Image Description"), answers=answers, step="targets")
        return _text_to_image(config.setup, config.retrieval, part, clip, targets, "osrcir")

    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts, body)}


@dataclasses.dataclass(frozen=True)
class ImageScopeConfig:
    setup: Setup = Setup()
    captioner: RoleConfig = clip_substitute("imagescope/captioner")
    reasoner: RoleConfig = embedded_llm("imagescope/reasoner_understand", 160)
    propositions: RoleConfig = embedded_llm("imagescope/reasoner_propositions", 120)
    verifier: RoleConfig = clip_substitute("imagescope/verifier")
    evaluator: RoleConfig = clip_substitute("imagescope/evaluator")
    descriptions: DescriptionConfig = DescriptionConfig(3)
    fusion: FusionConfig = FusionConfig(tau=0.15)
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=False)  # ImageScope keeps the reference
    rerank: RerankConfig = RerankConfig(top_k=20, alpha=3)
    stitch: bool = True  # stage 3: one stitched image per pair (official); False: two images
    stitch_size: int = 800  # stage 3: each half of a stitched image, in pixels (official 800)
    early_stop: bool = True  # stage 3: stop at a query's first Yes (official)
    evaluator_answer: str = "answer_line"  # "answer_line": reasoning ending in "ANSWER: Yes/No" (official); "yes_no"
    stages: tuple[str, ...] = ("s1", "s2", "s3")
    chat_rounds: int = 5  # chat layout: rounds 0..chat_rounds (VisDial: 10)
    subset_protocol: bool = False  # CIRR: the official --subset run: stages 2 (top subset_top_k) and 3 re-rank
    subset_top_k: int = 5  # the img_set members (minus the reference) by stage-1 score; Rs@K from that order

    def __post_init__(self) -> None:
        _deep_enough(self)
        if self.rerank.top_k > self.retrieval.k:
            checks.fail(self, "rerank.top_k", f"at most retrieval.k = {self.retrieval.k} (it reranks that list)",
                        self.rerank.top_k)
        if not self.stages or any(s not in ("s1", "s2", "s3") for s in self.stages):
            checks.fail(self, "stages", "a non-empty list among 's1', 's2', 's3'", list(self.stages))
        checks.integers_at_least(self, 0, "chat_rounds", "subset_top_k", "stitch_size")
        if self.evaluator_answer not in ("answer_line", "yes_no"):
            checks.fail(self, "evaluator_answer", "'answer_line' or 'yes_no'", self.evaluator_answer)


STEP_KEYS = (("step1", "operations"), ("step2", "descriptions"))  # the official prompts' answer keys


@stage(version=1)
def blank_references(config: None, split) -> tuple[str, ...]:
    """Text-to-image and chat queries have no reference: ImageScope describes it as a blank image."""
    return tuple("A blank image." for _ in split.queries)


def _stage1(engine: Engine, cfg: ImageScopeConfig, roles, split, ref_texts, texts, image_emb, caption_emb, name: str,
            fallbacks=None):
    """Descriptions at several granularities, then hybrid (fused) retrieval averaged over them. A failed answer
    falls back to ``fallbacks`` (the reference caption for composed queries, else the query text)."""
    fields = engine.run(zip_fields, FieldNames(("reference", "instruction")), columns=(ref_texts, texts),
                        step=f"{name}/fields")
    fallbacks = fallbacks if fallbacks is not None else texts
    understood = roles.reason(cfg.reasoner, fields, None, fallbacks, ("descriptions",), name=f"{name}_reasoner",
                              aliases=STEP_KEYS)
    descs = engine.run(descriptions, cfg.descriptions, answers=understood, fallbacks=fallbacks, step=f"{name}/descriptions")
    counts = engine.run(description_counts, cfg.descriptions, answers=understood, fallbacks=fallbacks,
                        step=f"{name}/description_counts")
    desc_emb = engine.run(embed_texts, cfg.setup.embed, texts=descs, model=roles.clip, step=f"{name}/embed_descriptions")
    grouped = engine.run(group_rows, None, embeddings=desc_emb, counts=counts, step=f"{name}/group")
    queries = engine.run(fuse_queries, None, descriptions=grouped, step=f"{name}/fuse_queries")
    gallery = engine.run(fuse_gallery, cfg.fusion, gallery_images=image_emb, gallery_captions=caption_emb,
                         step=f"{name}/fuse_gallery")
    return understood, queries, gallery


def _stage3(engine: Engine, cfg: ImageScopeConfig, roles, split, ranking, texts):
    """The evaluator on the top alpha, in rank order (one round per rank); the first Yes moves to rank 1."""
    pairs = PairsConfig(cfg.rerank.alpha, cfg.stitch, cfg.stitch_size)
    folder = None
    if cfg.stitch:
        stitched = engine.run(stitch_pairs, pairs, split=split, ranking=ranking, step="s3/stitch")
        folder = engine.run(export_files, cfg.setup.export, files=stitched, step="s3/export_stitched")
    images = engine.run(evaluator_images, pairs, split=split, ranking=ranking, folder=folder, step="s3/images")
    accepted = engine.run(nothing_accepted, None, split=split, step="s3/none_accepted")
    for position in range(cfg.rerank.alpha):
        round_ = RoundConfig(position, cfg.early_stop)
        inputs = engine.run(round_inputs, round_, images=images, instructions=texts, accepted=accepted,
                            step=f"s3/round{position}/inputs")
        verdicts = roles.ask("evaluator", cfg.evaluator, inputs, fallbacks=False, name=f"s3_evaluator_round{position}",
                             parse=ParseConfig(cfg.evaluator_answer))
        accepted = engine.run(update_accepted, round_, images=images, accepted=accepted, verdicts=verdicts,
                              step=f"s3/round{position}/accepted")
    return engine.run(promote_accepted, None, ranking=ranking, accepted=accepted, step="s3/promote")


@pipeline("imagescope", ImageScopeConfig)
def imagescope(engine: Engine, config: ImageScopeConfig) -> dict:
    """ImageScope: caption the gallery; describe the target (several granularities) and fuse text-to-image
    with text-to-text scores; verify propositions on the top-k; let the evaluator promote one of the top
    alpha. Composed (CIRR, CIRCO, FashionIQ with its reference), text-to-image and chat (per round)."""
    cfg = with_oracle_noise(config)
    parts, clip = prepare(engine, cfg.setup, {"captioner": cfg.captioner, "reasoner": cfg.reasoner,
                                              "propositions": cfg.propositions, "verifier": cfg.verifier,
                                              "evaluator": cfg.evaluator})
    return {**notice(cfg.setup), **over_parts(engine, benchmark_of(cfg.setup.data), parts,
                                               lambda part: _imagescope_part(cfg, part, clip))}


def _imagescope_part(cfg: ImageScopeConfig, part: Part, clip) -> dict:
    engine, roles, split = part.engine, part.roles, part.split
    task, benchmark = task_of(cfg.setup.data), benchmark_of(cfg.setup.data)
    gallery_refs = engine.run(gallery_images, None, split=split, step="gallery")
    gallery_captions = engine.run(answer_texts, AnswerTexts(), answers=roles.caption(cfg.captioner, gallery_refs,
                                  name="s0_captioner"), step="s0/captions")
    caption_emb = engine.run(embed_texts, cfg.setup.embed, texts=gallery_captions, model=clip, step="s0/embed_captions")
    image_emb = engine.run(embed_images, cfg.setup.embed, images=gallery_refs, model=clip, step="embed_gallery")
    composed = task == "composed"
    if composed:
        refs = engine.run(reference_images, None, split=split)
        ref_captions = roles.caption(cfg.captioner, refs, name="reference_captioner")
        ref_texts = engine.run(answer_texts, AnswerTexts(), answers=ref_captions, step="reference_captions")
    else:
        ref_texts = engine.run(blank_references, None, split=split)
    if task == "chat":  # per-round queries, per-round evaluation (cumulative Hits@10)
        rankings = []
        for r in range(cfg.chat_rounds + 1):
            texts = engine.run(query_texts, TextsConfig(round=r), split=split, step=f"r{r}/texts")
            _, queries, gallery = _stage1(engine, cfg, roles, split, ref_texts, texts, image_emb, caption_emb, f"r{r}/s1")
            chat = dataclasses.replace(cfg.retrieval, k=10, exclude_reference=False)
            rankings.append(rank(cfg.setup, chat, part, queries, gallery, f"r{r}"))
        metrics = engine.run(evaluate_chat, EvalConfig(ks=(10,)), split=split, rankings=tuple(rankings))
        return {"metrics": metrics}
    texts = engine.run(instructions, None, split=split)
    understood, queries, gallery = _stage1(engine, cfg, roles, split, ref_texts, texts, image_emb, caption_emb, "s1",
                                           fallbacks=ref_texts if composed else None)
    ranking, first = score(cfg.setup, cfg.retrieval, part, queries, gallery, "s1")
    out = {f"{kind} s1": value for kind, value in first.items()}
    full = None
    member_order = dataclasses.replace(cfg.retrieval, k=cfg.subset_top_k, subset=True, exclude_reference=True,
                                       backend="exact")
    if cfg.subset_protocol and benchmark == "cirr":  # stages 2 and 3 see the img_set members only
        full = ranking
        ranking = engine.run(retrieve, member_order, split=split, queries=queries, gallery=gallery, index=None,
                             step="s1/subset_protocol")
        cfg = dataclasses.replace(cfg, rerank=dataclasses.replace(cfg.rerank, top_k=cfg.subset_top_k))
    by_score = None
    if benchmark == "cirr" and full is None:  # every member by stage-1 score, for those a re-ranking does not reach
        by_score = engine.run(retrieve, member_order, split=split, queries=queries, gallery=gallery, index=None,
                              step="s1/subset_by_score")
    rescore = functools.partial(score_reranked, cfg.setup, part, full=full, by_score=by_score)
    if "s2" in cfg.stages:
        prop_fields = engine.run(proposition_fields, None, answers=understood, instructions=texts, step="s2/fields")
        props = roles.reason(cfg.propositions, prop_fields, None, {"propositions": []}, ("propositions",),
                             name="s2_reasoner", folder="propositions")
        checks_ = engine.run(verification_inputs, cfg.rerank, split=split, ranking=ranking, propositions=props,
                             step="s2/checks")
        verdicts = roles.ask("verifier", cfg.verifier, checks_, fallbacks=False, name="s2_verifier")
        ranking = engine.run(rerank_by_propositions, cfg.rerank, ranking=ranking, propositions=props, verdicts=verdicts,
                             step="s2/rerank")
        out.update({f"{kind} s2": value for kind, value in rescore(ranking, "s2").items()})
    if "s3" in cfg.stages:  # text-to-image: a black reference (official)
        ranking = _stage3(engine, cfg, roles, split, ranking, texts)
        out.update({f"{kind} s3": value for kind, value in rescore(ranking, "s3").items()})
    kind = "metrics" if "metrics s1" in out else "submission"
    last = [s for s in ("s1", "s2", "s3") if f"{kind} {s}" in out][-1]
    out[kind] = out[f"{kind} {last}"]
    return out
