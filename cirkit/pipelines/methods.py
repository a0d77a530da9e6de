"""CIReVL, OSrCIR and ImageScope as short compositions of cached stages.

Every paper knob is a config field; by default they run on the built-in benchmark with the embedded
backends (SmolLM2 as reasoner, CLIP substitutes for the vision roles). ``experiments/paper/`` points the
same pipelines at real benchmarks, CLIP checkpoints and model servers.
"""

from __future__ import annotations

import dataclasses

from ..data.errors import DataError
from ..encoders.stages import embed_images, embed_texts
from ..engine import Engine, stage
from ..evaluation.stages import EvalConfig, evaluate_chat
from ..experiment.pipeline import pipeline
from ..methods.baselines import TextsConfig, gallery_images, query_texts
from ..methods.common import AnswerTexts, FieldNames, answer_texts, instructions, reference_images, zip_fields
from ..methods.imagescope import (
    DescriptionConfig,
    RerankConfig,
    descriptions,
    evaluation_inputs,
    group_rows,
    promote_first_accepted,
    proposition_fields,
    rerank_by_propositions,
    verification_inputs,
)
from ..models.roles import ParseConfig, RoleConfig, call_role
from ..retrieval.stages import FusionConfig, RetrievalConfig, fuse_gallery, fuse_queries
from .parts import Part, over_parts
from .scoring import notice, rank, score, score_reranked
from .setup import Setup, benchmark_of, clip_substitute, embedded_llm, prepare, task_of


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


@dataclasses.dataclass(frozen=True)
class CIReVLConfig:
    setup: Setup = Setup()
    captioner: RoleConfig = clip_substitute("generic/captioner")
    reasoner: RoleConfig = embedded_llm("cirevl/rewrite", 80)
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark


@pipeline("cirevl", CIReVLConfig)
def cirevl(engine: Engine, config: CIReVLConfig) -> dict:
    """CIReVL: caption the reference, rewrite the caption with the instruction (LLM), CLIP text-to-image."""
    _composed_only("cirevl", config.setup)
    parts, clip = prepare(engine, config.setup, {"captioner": config.captioner, "reasoner": config.reasoner})

    def body(part: Part) -> dict:
        run, roles = part.engine.run, part.roles
        refs = run(reference_images, None, split=part.split)
        texts = run(instructions, None, split=part.split)
        captions = run(answer_texts, AnswerTexts(), answers=roles.caption(config.captioner, refs), step="captions")
        fields = run(zip_fields, FieldNames(("reference", "instruction")), columns=(captions, texts))
        rewrites = roles.reason(config.reasoner, fields, None, captions, ("target",))
        targets = run(answer_texts, AnswerTexts("target"), answers=rewrites, step="targets")
        return _text_to_image(config.setup, config.retrieval, part, clip, targets, "cirevl")

    return {**notice(config.setup), **over_parts(engine, benchmark_of(config.setup.data), parts, body)}


@dataclasses.dataclass(frozen=True)
class OSrCIRConfig:
    setup: Setup = Setup()
    reasoner: RoleConfig = clip_substitute("osrcir/reflective")  # a multimodal model; CLIP substitute by default
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark


@pipeline("osrcir", OSrCIRConfig)
def osrcir(engine: Engine, config: OSrCIRConfig) -> dict:
    """OSrCIR: one multimodal call with reflective chain-of-thought (JSON), then CLIP text-to-image retrieval."""
    _composed_only("osrcir", config.setup)
    parts, clip = prepare(engine, config.setup, {"multimodal_reasoner": config.reasoner})

    def body(part: Part) -> dict:
        run = part.engine.run
        refs = run(reference_images, None, split=part.split)
        texts = run(instructions, None, split=part.split)
        answers = part.roles.reason_about_image(config.reasoner, refs, texts, texts)
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
    stages: tuple[str, ...] = ("s1", "s2", "s3")
    chat_rounds: int = 5  # chat layout: rounds 0..chat_rounds (VisDial: 10)


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
    understood = roles.reason(cfg.reasoner, fields, None, fallbacks, ("descriptions",), name=f"{name}_reasoner")
    descs = engine.run(descriptions, cfg.descriptions, answers=understood, fallbacks=fallbacks, step=f"{name}/descriptions")
    desc_emb = engine.run(embed_texts, cfg.setup.embed, texts=descs, model=roles.clip, step=f"{name}/embed_descriptions")
    grouped = engine.run(group_rows, cfg.descriptions, embeddings=desc_emb, step=f"{name}/group")
    queries = engine.run(fuse_queries, None, descriptions=grouped, step=f"{name}/fuse_queries")
    gallery = engine.run(fuse_gallery, cfg.fusion, gallery_images=image_emb, gallery_captions=caption_emb,
                         step=f"{name}/fuse_gallery")
    return understood, queries, gallery


@pipeline("imagescope", ImageScopeConfig)
def imagescope(engine: Engine, config: ImageScopeConfig) -> dict:
    """ImageScope: caption the gallery; describe the target (several granularities) and fuse text-to-image
    with text-to-text scores; verify propositions on the top-k; let the evaluator promote one of the top
    alpha. Composed (CIRR, CIRCO, FashionIQ with its reference), text-to-image and chat (per round)."""
    cfg = config
    parts, clip = prepare(engine, cfg.setup, {"captioner": cfg.captioner, "reasoner": cfg.reasoner,
                                              "propositions": cfg.propositions, "verifier": cfg.verifier,
                                              "evaluator": cfg.evaluator})
    return {**notice(cfg.setup), **over_parts(engine, benchmark_of(cfg.setup.data), parts,
                                               lambda part: _imagescope_part(cfg, part, clip))}


def _imagescope_part(cfg: ImageScopeConfig, part: Part, clip) -> dict:
    engine, roles, split = part.engine, part.roles, part.split
    task = task_of(cfg.setup.data)
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
    if "s2" in cfg.stages:
        prop_fields = engine.run(proposition_fields, None, answers=understood, instructions=texts, step="s2/fields")
        props = roles.reason(cfg.propositions, prop_fields, None, {"propositions": []}, ("propositions",),
                             name="s2_reasoner")
        checks = engine.run(verification_inputs, cfg.rerank, split=split, ranking=ranking, propositions=props,
                            step="s2/checks")
        verdicts = call_role(engine, "verifier", cfg.verifier, checks, False, name="s2_verifier",
                             folder=roles.folders.get("verifier"))
        ranking = engine.run(rerank_by_propositions, cfg.rerank, ranking=ranking, propositions=props, verdicts=verdicts,
                             step="s2/rerank")
        out.update({f"{kind} s2": value for kind, value in score_reranked(cfg.setup, part, ranking, "s2").items()})
    if "s3" in cfg.stages and composed:  # the evaluator compares with a reference image
        pairs = engine.run(evaluation_inputs, cfg.rerank, split=split, ranking=ranking, instructions=texts,
                           step="s3/pairs")
        accepted = call_role(engine, "evaluator", cfg.evaluator, pairs, False, name="s3_evaluator",
                             folder=roles.folders.get("evaluator"), parse=ParseConfig("yes_no"))
        ranking = engine.run(promote_first_accepted, cfg.rerank, ranking=ranking, verdicts=accepted, step="s3/promote")
        out.update({f"{kind} s3": value for kind, value in score_reranked(cfg.setup, part, ranking, "s3").items()})
    kind = "metrics" if "metrics s1" in out else "submission"
    out[kind] = out[max(k for k in out if k.startswith(kind + " "))]
    return out
