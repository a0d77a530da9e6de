"""The demo: generate the built-in benchmark, train cirkit's CLIP on it, and evaluate the zero-shot CLIP
baselines on text-to-image, composed and chat retrieval, all through the real loaders, encoders and metrics.
"""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks
from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig
from ..encoders.stages import EmbedConfig, embed_images, embed_texts
from ..engine import Engine, stage
from ..evaluation.stages import DEFAULT_KS, EvalConfig, evaluate, evaluate_chat
from ..experiment.pipeline import pipeline
from ..methods.baselines import MODES, BaselineConfig, TextsConfig, compose_queries, gallery_images, query_texts
from ..retrieval.stages import RetrievalConfig, retrieve
from ..training.clip_trainer import TrainConfig
from .embedded import builtin_world, load_layout

DEEPEST_K = max(k for ks in DEFAULT_KS.values() for k in ks)  # the largest K a benchmark's metrics use


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    benchmark: BuiltinConfig = BuiltinConfig()
    train: TrainConfig = TrainConfig(matmul="bfloat16")  # mixed precision: the demo's CLIP, not the methods' worlds'
    export: ExportConfig = ExportConfig()
    embed: EmbedConfig = EmbedConfig()
    k: int = 50
    modes: tuple[str, ...] = MODES

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and self.k >= DEEPEST_K):  # CIRR's R@50 and CIRCO's mAP@50 need 50
            checks.fail(self, "k", f"an integer >= {DEEPEST_K} (the largest K the demo reports)", self.k)
        for mode in self.modes:
            if mode not in MODES:
                checks.fail(self, "modes", "modes among " + ", ".join(MODES), list(self.modes))


def chance_level(metric: str, gallery: int, subset: int = 5) -> float | None:
    """Expected value of a recall-type metric for a random ranking (None where it has no simple form)."""
    kind, _, rest = metric.partition("@")
    if not rest or kind not in ("R", "Rs", "Hits"):
        return None
    k = int(rest.split(" ")[0])
    n = subset if kind == "Rs" else gallery
    return round(100 * min(k, n) / n, 4)


@stage(version=1, helpers=[chance_level])
def metric_table(config: None, tasks: dict, splits: dict) -> dict:
    """One row per task and baseline, and per task a row with the chance level of its recall metrics."""
    table = {}
    for name, metrics in tasks.items():  # CIRCO's per-aspect mAP@10 gets a table of its own
        table[name] = {m: v for m, v in metrics.items() if not m.startswith("mAP@10 ")}
        aspects = {m.removeprefix("mAP@10 "): v for m, v in metrics.items() if m.startswith("mAP@10 ")}
        if aspects:
            task, _, variant = name.partition(" · ")
            table[f"{task} mAP@10 per aspect · {variant}"] = aspects
    for task, split in splits.items():
        names = {m for name, ms in table.items() if name.startswith(task + " · ") for m in ms}
        composed = split.benchmark in ("cirr", "circo")
        gallery = len(split.gallery.images) - (1 if composed else 0)  # the reference is excluded
        row = {m: chance_level(m, gallery) for m in sorted(names)}
        table[f"{task} · chance"] = {m: v for m, v in row.items() if v is not None}
    return table


@pipeline("demo", DemoConfig)
def demo(engine: Engine, config: DemoConfig) -> dict:
    """Built-in benchmark -> cirkit-trained CLIP -> CLIP baselines on all three tasks."""
    world = builtin_world(engine, config.benchmark, config.train, config.export)
    model = world.clip

    def embed(split, name, texts_config=TextsConfig()):
        images = engine.run(gallery_images, None, split=split, step=f"{name}/gallery")
        texts = engine.run(query_texts, texts_config, split=split, step=f"{name}/texts")
        return (engine.run(embed_images, config.embed, images=images, model=model, step=f"{name}/embed_gallery"),
                engine.run(embed_texts, config.embed, texts=texts, model=model, step=f"{name}/embed_texts"))

    tasks, splits = {}, {}
    evaluation = EvalConfig()
    t2i = load_layout(engine, world, "t2i", step="t2i/load")
    gallery, texts = embed(t2i, "t2i")
    ranking = engine.run(retrieve, RetrievalConfig(k=config.k, exclude_reference=False), split=t2i, queries=texts,
                         gallery=gallery, index=None, step="t2i/retrieve")
    tasks["text-to-image · text"] = engine.run(evaluate, EvalConfig(ks=(1, 5, 10)), split=t2i, ranking=ranking,
                                               subset_ranking=None, step="t2i/evaluate")
    splits["text-to-image"] = t2i

    for layout in ("cirr", "circo"):
        split = load_layout(engine, world, layout, step=f"{layout}/load")
        gallery, texts = embed(split, layout)
        splits[f"composed {layout}"] = split
        for mode in config.modes:
            queries = engine.run(compose_queries, BaselineConfig(mode), split=split, gallery=gallery, texts=texts,
                                 step=f"{layout}/{mode}/queries")
            ranking = engine.run(retrieve, RetrievalConfig(k=config.k), split=split, queries=queries, gallery=gallery,
                                 index=None, step=f"{layout}/{mode}/retrieve")
            subset = None
            if layout == "cirr":
                subset = engine.run(retrieve, RetrievalConfig(k=3, subset=True), split=split, queries=queries,
                                    gallery=gallery, index=None, step=f"{layout}/{mode}/retrieve_subset")
            tasks[f"composed {layout} · {mode}"] = engine.run(evaluate, evaluation, split=split, ranking=ranking,
                                                              subset_ranking=subset, step=f"{layout}/{mode}/evaluate")

    chat = load_layout(engine, world, "chat", step="chat/load")
    rounds = range(config.benchmark.chat_rounds + 1)
    chat_gallery = engine.run(embed_images, config.embed, model=model, step="chat/embed_gallery",
                              images=engine.run(gallery_images, None, split=chat, step="chat/gallery"))
    rankings = []
    for r in rounds:
        texts = engine.run(query_texts, TextsConfig(round=r), split=chat, step=f"chat/r{r}/texts")
        emb = engine.run(embed_texts, config.embed, texts=texts, model=model, step=f"chat/r{r}/embed_texts")
        rankings.append(engine.run(retrieve, RetrievalConfig(k=10, exclude_reference=False), split=chat, queries=emb,
                                   gallery=chat_gallery, index=None, step=f"chat/r{r}/retrieve"))
    tasks["chat · text"] = engine.run(evaluate_chat, EvalConfig(ks=(10,)), split=chat, rankings=tuple(rankings))
    splits["chat"] = chat
    metrics = engine.run(metric_table, None, tasks=tasks, splits=splits)
    return {"metrics": metrics, "model": world.clip_folder, "benchmark": world.root}
