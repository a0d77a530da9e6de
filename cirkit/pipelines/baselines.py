"""The zero-shot CLIP baselines on any benchmark: composed (text, image, sum, average), text-to-image (the
caption) and chat (the dialogue up to each round, cumulative Hits@10), under each benchmark's protocol."""

from __future__ import annotations

import dataclasses

from ..encoders.stages import embed_images, embed_texts
from ..engine import Engine, stage
from ..evaluation.stages import EvalConfig, evaluate_chat
from ..experiment.pipeline import pipeline
from ..methods.baselines import MODES, BaselineConfig, TextsConfig, compose_queries, gallery_images, query_texts
from ..retrieval.stages import RetrievalConfig
from .parts import Part, over_parts
from .scoring import notice, rank, score
from .setup import Setup, benchmark_of, prepare, task_of


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
    setup: Setup = Setup()
    modes: tuple[str, ...] = MODES  # composed queries; text-to-image and chat use the text alone
    retrieval: RetrievalConfig = RetrievalConfig(k=50, exclude_reference=None, subset=None)  # official per benchmark
    chat_rounds: int = 10  # chat: rounds 0..chat_rounds (the built-in chat layout has 5)


@stage(version=1)
def by_mode(config: None, modes: dict) -> dict:
    """One metrics table with a row per baseline."""
    return dict(modes)


def _part(cfg: BaselinesConfig, part: Part, clip) -> dict:
    engine, split = part.engine, part.split
    task = task_of(cfg.setup.data)
    images = engine.run(gallery_images, None, split=split, step="gallery")
    gallery = engine.run(embed_images, cfg.setup.embed, images=images, model=clip, step="embed_gallery")
    if task == "chat":
        rankings = []
        rounds = min(cfg.chat_rounds, cfg.setup.benchmark.chat_rounds) if cfg.setup.data.source == "builtin" \
            else cfg.chat_rounds
        for r in range(rounds + 1):
            texts = engine.run(query_texts, TextsConfig(round=r), split=split, step=f"r{r}/texts")
            queries = engine.run(embed_texts, cfg.setup.embed, texts=texts, model=clip, step=f"r{r}/embed_texts")
            chat = dataclasses.replace(cfg.retrieval, k=10, exclude_reference=False)
            rankings.append(rank(cfg.setup, chat, part, queries, gallery, f"r{r}"))
        return {"metrics": engine.run(evaluate_chat, EvalConfig(ks=(10,)), split=split, rankings=tuple(rankings))}
    texts = engine.run(query_texts, TextsConfig(), split=split, step="texts")
    text_emb = engine.run(embed_texts, cfg.setup.embed, texts=texts, model=clip, step="embed_texts")
    if task == "t2i":
        return score(cfg.setup, cfg.retrieval, part, text_emb, gallery, "text")[1]
    out: dict = {}
    for mode in cfg.modes:
        queries = engine.run(compose_queries, BaselineConfig(mode), split=split, gallery=gallery, texts=text_emb,
                             step=f"{mode}/queries")
        for kind, value in score(cfg.setup, cfg.retrieval, part, queries, gallery, mode)[1].items():
            out.setdefault(kind, {})[mode] = value
    if "submission" in out:
        return {f"submission {mode}": value for mode, value in out["submission"].items()}
    return {"metrics": engine.run(by_mode, None, modes=out["metrics"], step="metrics")}


@pipeline("clip_baselines", BaselinesConfig)
def clip_baselines(engine: Engine, config: BaselinesConfig) -> dict:
    """Zero-shot CLIP baselines (text, image, sum, average) on any benchmark, under its official protocol."""
    parts, clip = prepare(engine, config.setup, {})
    return {**notice(config.setup),
            **over_parts(engine, benchmark_of(config.setup.data), parts, lambda part: _part(config, part, clip))}
