"""ImageScope as a composition of cached stages: caption the gallery (stage 0); describe the target at several
granularities and fuse text-to-image with text-to-text scores (stage 1); verify propositions on the top-k
(stage 2); let the evaluator promote one of the top alpha (stage 3). Composed, text-to-image and chat."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ... import config_checks as checks
from ...builtin.files import export_files
from ...encoders.stages import embed_images, embed_texts
from ...engine import Engine
from ...evaluation.stages import EvalConfig, evaluate_chat
from ...experiment.pipeline import pipeline
from ...models.roles import ParseConfig, RoleConfig
from ...pipelines.parts import Part, over_parts
from ...pipelines.scoring import notice, rank, require_deep_enough, score, score_reranked
from ...pipelines.setup import Setup, benchmark_of, clip_substitute, embedded_llm, prepare, task_of, with_oracle_noise
from ...retrieval.stages import FusionConfig, RetrievalConfig, fuse_gallery, fuse_queries, retrieve
from ..baselines import TextsConfig, gallery_images, query_texts
from ..common import AnswerTexts, FieldNames, answer_texts, instructions, reference_images, zip_fields
from .evaluation import (
    PairsConfig,
    RoundConfig,
    evaluator_images,
    nothing_accepted,
    promote_accepted,
    round_inputs,
    stitch_pairs,
    update_accepted,
)
from .stages import (
    STEP_KEYS,
    DescriptionConfig,
    RerankConfig,
    TurnConfig,
    blank_references,
    chat_turns,
    description_counts,
    descriptions,
    group_rows,
    joined_texts,
    proposition_fields,
    rerank_by_propositions,
    verification_inputs,
)

__all__ = ["ImageScopeConfig", "imagescope"]

STAGES = ("s1", "s2", "s3")


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
    stages: tuple[str, ...] = STAGES
    chat_rounds: int = 5  # chat layout: rounds 0..chat_rounds (VisDial: 10)
    chat_mode: Literal["official", "dialogue"] = "official"  # official: round r's reasoner sees round r-1's first
    # description and the new question/answer, stages 2 and 3 run every round; dialogue: stage 1 alone on the
    # whole dialogue up to round r
    subset_protocol: bool = False  # CIRR: the official --subset run: stages 2 (top subset_top_k) and 3 re-rank
    subset_top_k: int = 5  # the img_set members (minus the reference) by stage-1 score; Rs@K from that order

    def __post_init__(self) -> None:
        require_deep_enough(self)
        if self.rerank.top_k > self.retrieval.k:
            checks.fail(self, "rerank.top_k", f"at most retrieval.k = {self.retrieval.k} (it reranks that list)",
                        self.rerank.top_k)
        if not self.stages or any(s not in STAGES for s in self.stages):
            checks.fail(self, "stages", "a non-empty list among 's1', 's2', 's3'", list(self.stages))
        checks.integers_at_least(self, 0, "chat_rounds", "subset_top_k", "stitch_size")
        if self.chat_mode not in ("official", "dialogue"):
            checks.fail(self, "chat_mode", "'official' or 'dialogue'", self.chat_mode)
        if self.evaluator_answer not in ("answer_line", "yes_no"):
            checks.fail(self, "evaluator_answer", "'answer_line' or 'yes_no'", self.evaluator_answer)


@dataclasses.dataclass(frozen=True)
class _Scope:
    """What every stage of one part's run shares: the config, the part (engine, roles, split) and stage 0's
    gallery embeddings (images, and captions for the fused text-to-text score)."""

    cfg: ImageScopeConfig
    part: Part
    image_emb: Any
    caption_emb: Any

    @property
    def run(self):
        return self.part.engine.run


@pipeline("imagescope", ImageScopeConfig)
def imagescope(engine: Engine, config: ImageScopeConfig) -> dict:
    """ImageScope: caption the gallery; describe the target (several granularities) and fuse text-to-image
    with text-to-text scores; verify propositions on the top-k; let the evaluator promote one of the top
    alpha. Composed (CIRR, CIRCO, FashionIQ with its reference), text-to-image and chat (per round)."""
    cfg = with_oracle_noise(config)
    parts, clip = prepare(engine, cfg.setup, {"captioner": cfg.captioner, "reasoner": cfg.reasoner,
                                              "propositions": cfg.propositions, "verifier": cfg.verifier,
                                              "evaluator": cfg.evaluator})
    body = {"chat": _chat_part}.get(task_of(cfg.setup.data), _single_query_part)
    return {**notice(cfg.setup), **over_parts(engine, benchmark_of(cfg.setup.data), parts,
                                               lambda part: body(_stage0(cfg, part, clip)))}


def _stage0(cfg: ImageScopeConfig, part: Part, clip) -> _Scope:
    """Caption every gallery image; embed the images and the captions."""
    run, roles = part.engine.run, part.roles
    images = run(gallery_images, None, split=part.split, step="gallery")
    captions = run(answer_texts, AnswerTexts(), answers=roles.caption(cfg.captioner, images, name="s0_captioner"),
                   step="s0/captions")
    caption_emb = run(embed_texts, cfg.setup.embed, texts=captions, model=clip, step="s0/embed_captions")
    image_emb = run(embed_images, cfg.setup.embed, images=images, model=clip, step="embed_gallery")
    return _Scope(cfg, part, image_emb, caption_emb)


def _reference_texts(scope: _Scope):
    """The reference image's caption (composed queries) or "A blank image." (text-to-image and chat)."""
    run, split = scope.run, scope.part.split
    if task_of(scope.cfg.setup.data) != "composed":
        return run(blank_references, None, split=split)
    refs = run(reference_images, None, split=split)
    captions = scope.part.roles.caption(scope.cfg.captioner, refs, name="reference_captioner")
    return run(answer_texts, AnswerTexts(), answers=captions, step="reference_captions")


def _stage1(scope: _Scope, references, texts, fallbacks, name: str) -> tuple:
    """Descriptions at several granularities, then hybrid (fused) retrieval averaged over them; a failed answer
    falls back to ``fallbacks``. Returns (the reasoner's answers, query vectors, fused gallery)."""
    cfg, run = scope.cfg, scope.run
    fields = run(zip_fields, FieldNames(("reference", "instruction")), columns=(references, texts),
                 step=f"{name}/fields")
    understood = scope.part.roles.reason(cfg.reasoner, fields, fallbacks=fallbacks, required=("descriptions",),
                                         name=f"{name}_reasoner", aliases=STEP_KEYS)
    descs = run(descriptions, cfg.descriptions, answers=understood, fallbacks=fallbacks, step=f"{name}/descriptions")
    counts = run(description_counts, cfg.descriptions, answers=understood, fallbacks=fallbacks,
                 step=f"{name}/description_counts")
    desc_emb = run(embed_texts, cfg.setup.embed, texts=descs, model=scope.part.roles.clip,
                   step=f"{name}/embed_descriptions")
    grouped = run(group_rows, None, embeddings=desc_emb, counts=counts, step=f"{name}/group")
    queries = run(fuse_queries, None, descriptions=grouped, step=f"{name}/fuse_queries")
    gallery = run(fuse_gallery, cfg.fusion, gallery_images=scope.image_emb, gallery_captions=scope.caption_emb,
                  step=f"{name}/fuse_gallery")
    return understood, queries, gallery


def _stage2(scope: _Scope, ranking, understood, texts, prefix: str = ""):
    """Propositions from the reasoner's operations, checked by the verifier on the top-k; stable re-ranking."""
    cfg, run, roles, split = scope.cfg, scope.run, scope.part.roles, scope.part.split
    fields = run(proposition_fields, None, answers=understood, instructions=texts, step=f"{prefix}s2/fields")
    props = roles.reason(cfg.propositions, fields, fallbacks={"propositions": []}, required=("propositions",),
                         name=f"{prefix}s2_reasoner", folder="propositions")
    checks_ = run(verification_inputs, cfg.rerank, split=split, ranking=ranking, propositions=props,
                  step=f"{prefix}s2/checks")
    verdicts = roles.ask("verifier", cfg.verifier, checks_, fallbacks=False, name=f"{prefix}s2_verifier")
    return run(rerank_by_propositions, cfg.rerank, ranking=ranking, propositions=props, verdicts=verdicts,
               step=f"{prefix}s2/rerank")


def _stage3(scope: _Scope, ranking, texts, prefix: str = ""):
    """The evaluator on the top alpha, in rank order (one round per rank); the first Yes moves to rank 1."""
    cfg, run, split = scope.cfg, scope.run, scope.part.split
    pairs = PairsConfig(cfg.rerank.alpha, cfg.stitch, cfg.stitch_size)
    folder = None
    if cfg.stitch:
        stitched = run(stitch_pairs, pairs, split=split, ranking=ranking, step=f"{prefix}s3/stitch")
        folder = run(export_files, cfg.setup.export, files=stitched, step=f"{prefix}s3/export_stitched")
    images = run(evaluator_images, pairs, split=split, ranking=ranking, folder=folder, step=f"{prefix}s3/images")
    accepted = run(nothing_accepted, None, split=split, step=f"{prefix}s3/none_accepted")
    for position in range(cfg.rerank.alpha):
        round_ = RoundConfig(position, cfg.early_stop)
        inputs = run(round_inputs, round_, images=images, instructions=texts, accepted=accepted,
                     step=f"{prefix}s3/round{position}/inputs")
        verdicts = scope.part.roles.ask("evaluator", cfg.evaluator, inputs, fallbacks=False,
                                        name=f"{prefix}s3_evaluator_round{position}",
                                        parse=ParseConfig(cfg.evaluator_answer))
        accepted = run(update_accepted, round_, images=images, accepted=accepted, verdicts=verdicts,
                       step=f"{prefix}s3/round{position}/accepted")
    return run(promote_accepted, None, ranking=ranking, accepted=accepted, step=f"{prefix}s3/promote")


def _chat_part(scope: _Scope) -> dict:
    """Per-round queries, per-round evaluation (cumulative Hits@10). Round 0 describes the caption; in the
    official mode round r >= 1 gives the reasoner round r-1's first description as the reference and the new
    question/answer as the instruction, and re-ranks with stages 2 and 3 (the evaluator reads the round's
    description); a failed answer falls back to the previous description joined with the new turn."""
    cfg, run, split = scope.cfg, scope.run, scope.part.split
    official = cfg.chat_mode == "official"
    blank = _reference_texts(scope)
    retrieval = dataclasses.replace(cfg.retrieval, k=max(10, cfg.rerank.top_k) if official else 10,
                                    exclude_reference=False)
    rankings, previous = [], None
    for r in range(cfg.chat_rounds + 1):
        if official and r > 0:
            references = previous
            texts = run(chat_turns, TurnConfig(r), split=split, step=f"r{r}/turn")
            fallbacks = run(joined_texts, None, first=previous, second=texts, step=f"r{r}/fallbacks")
        else:
            references = blank
            texts = fallbacks = run(query_texts, TextsConfig(round=r), split=split, step=f"r{r}/texts")
        understood, queries, gallery = _stage1(scope, references, texts, fallbacks, f"r{r}/s1")
        ranking = rank(cfg.setup, retrieval, scope.part, queries, gallery, f"r{r}")
        if official:
            previous = run(descriptions, DescriptionConfig(1), answers=understood, fallbacks=fallbacks,
                           step=f"r{r}/s1/first_description")
            if "s2" in cfg.stages:
                ranking = _stage2(scope, ranking, understood, texts, prefix=f"r{r}/")
            if "s3" in cfg.stages:
                ranking = _stage3(scope, ranking, previous, prefix=f"r{r}/")
        rankings.append(ranking)
    return {"metrics": run(evaluate_chat, EvalConfig(ks=(10,)), split=split, rankings=tuple(rankings))}


def _single_query_part(scope: _Scope) -> dict:
    """Composed and text-to-image queries: stages 1-3, each scored; the last stage run gives the final output.
    On CIRR, the subset protocol restricts stages 2 and 3 to the img_set members."""
    cfg, run, part, split = scope.cfg, scope.run, scope.part, scope.part.split
    composed = task_of(cfg.setup.data) == "composed"
    references = _reference_texts(scope)
    texts = run(instructions, None, split=split)
    understood, queries, gallery = _stage1(scope, references, texts, references if composed else texts, "s1")
    ranking, scored = score(cfg.setup, cfg.retrieval, part, queries, gallery, "s1")
    out = {f"{kind} s1": value for kind, value in scored.items()}
    final = scored
    full = by_score = None
    members = dataclasses.replace(cfg.retrieval, k=cfg.subset_top_k, subset=True, exclude_reference=True,
                                  backend="exact")
    if benchmark_of(cfg.setup.data) == "cirr":
        if cfg.subset_protocol:  # stages 2 and 3 see the img_set members only
            full = ranking
            ranking = run(retrieve, members, split=split, queries=queries, gallery=gallery, index=None,
                          step="s1/subset_protocol")
            scope = dataclasses.replace(scope, cfg=dataclasses.replace(
                cfg, rerank=dataclasses.replace(cfg.rerank, top_k=cfg.subset_top_k)))
        else:  # every member by stage-1 score, for those a re-ranking does not reach
            by_score = run(retrieve, members, split=split, queries=queries, gallery=gallery, index=None,
                           step="s1/subset_by_score")
    if "s2" in cfg.stages:
        ranking = _stage2(scope, ranking, understood, texts)
        final = score_reranked(cfg.setup, part, ranking, "s2", full=full, by_score=by_score)
        out.update({f"{kind} s2": value for kind, value in final.items()})
    if "s3" in cfg.stages:  # text-to-image: a black reference (official)
        ranking = _stage3(scope, ranking, texts)
        final = score_reranked(cfg.setup, part, ranking, "s3", full=full, by_score=by_score)
        out.update({f"{kind} s3": value for kind, value in final.items()})
    return {**out, **final}
