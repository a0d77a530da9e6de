"""A small composed-retrieval pipeline over real image files, for report and notebook tests: coloured
squares, a per-query "description" text stage, a ranking whose quality a config knob sets, the real
``evaluate`` stage (CIRR metrics) and a metrics table with a chance row."""

import dataclasses
import os

import numpy as np

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.engine import file_digest, stage
from cirkit.evaluation.stages import EvalConfig, evaluate
from cirkit.experiment.pipeline import pipeline
from cirkit.retrieval.ranking import Ranking

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


def write_images(folder, n=24):
    """Image i: a square of colour i % 6 whose brightness grows with i // 6 (real PNG files)."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rgb = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30),
           "purple": (140, 30, 160), "orange": (240, 140, 20)}
    for i in range(n):
        scale = 0.4 + 0.6 * (i // 6) / max(1, (n - 1) // 6)
        colour = tuple(int(c * scale) for c in rgb[COLOURS[i % 6]])
        Image.new("RGB", (48, 48), colour).save(os.path.join(folder, f"img{i:03d}.png"))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    folder: str = ""
    n_queries: int = 12


@dataclasses.dataclass(frozen=True)
class RankConfig:
    noise: float = 0.5  # 0: the target first; larger: a noisier ranking
    seed: int = 0
    k: int = 10


@dataclasses.dataclass(frozen=True)
class SquaresConfig:
    data: DataConfig = DataConfig()
    rank: RankConfig = RankConfig()


@stage(version=1)
def load_squares(config: DataConfig) -> Split:
    names = sorted(f for f in os.listdir(config.folder) if f.endswith(".png"))
    images = tuple(ImageRef(f[:-4], os.path.join(config.folder, f), content=file_digest(os.path.join(config.folder, f)))
                   for f in names)
    queries, truths = [], []
    for q in range(config.n_queries):
        ref, target = q % len(images), (q * 5 + 7) % len(images)
        queries.append(ComposedQuery(f"q{q:02d}", images[ref].id, f"make it {COLOURS[target % 6]} and brighter"))
        truths.append(Truth(target=images[target].id))
    return Split("cirr", "val", Gallery("squares", images), tuple(queries), tuple(truths))


@stage(version=1)
def describe(config: RankConfig, split: Split) -> tuple:
    """One intermediate text per query (a stand-in for a target description written by a model)."""
    return tuple(f"a {q.text.split()[2]} square (noise {config.noise})" for q in split.queries)


@stage(version=1)
def rank(config: RankConfig, split: Split) -> Ranking:
    index = split.gallery.index()
    rng = np.random.default_rng(config.seed)
    scores = rng.standard_normal((len(split.queries), len(index))) * config.noise
    for q, truth in enumerate(split.truths):
        scores[q, index[truth.target]] += 1.0
    order = np.argsort(-scores, axis=1)[:, : config.k]
    return Ranking(tuple(q.id for q in split.queries), split.gallery.ids(), order.astype(np.int64),
                   np.take_along_axis(scores, order, axis=1).astype(np.float32))


@stage(version=1)
def table(config: None, metrics: dict, split: Split) -> dict:
    n = len(split.gallery.images)
    return {"composed squares · ranker": metrics,
            "composed squares · chance": {m: round(100 * int(m.split("@")[1]) / n, 2) for m in metrics}}


@pipeline("squares", SquaresConfig)
def squares(engine, config: SquaresConfig) -> dict:
    split = engine.run(load_squares, config.data)
    engine.run(describe, config.rank, split=split)
    ranking = engine.run(rank, config.rank, split=split)
    metrics = engine.run(evaluate, EvalConfig(ks=(1, 5, 10)), split=split, ranking=ranking, subset_ranking=None)
    return {"metrics": engine.run(table, None, metrics=metrics, split=split), "ranking": ranking}
