"""A small, self-contained retrieval experiment on synthetic data (the smallest real experiment).

Items belong to latent clusters; a fixed random two-layer "encoder" maps each item's latent features to a
unit vector; queries are noisy views of a target item encoded the same way. Exact cosine search ranks the
gallery and Recall@K is reported next to chance. It exercises every part of the engine (a whole stage, an
item-mapping stage used twice, arrays in Zarr, metrics) without any model weights or data downloads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import config_checks as checks
from ..engine import Engine, artifact_type, stage
from ..evaluation.metrics import recall_at_k
from ..experiment.pipeline import pipeline
from ..retrieval.exact import exact_topk


@artifact_type
@dataclasses.dataclass(frozen=True)
class Item:
    """One view of a synthetic item: its id, cluster, identity seed, and which view it is (0 = gallery)."""

    id: str
    cluster: int
    seed: int
    view: int = 0


@dataclasses.dataclass(frozen=True)
class GalleryConfig:
    n_items: int = 2000
    n_clusters: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "n_items", "n_clusters")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    latent_dim: int = 64
    hidden_dim: int = 256
    dim: int = 128
    noise: float = 0.6
    seed: int = 0
    storage_dtype: str = "float32"

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "latent_dim", "hidden_dim", "dim")
        checks.numbers_at_least(self, 0, "noise")
        checks.one_of(self, "storage_dtype", ("float16", "float32", "float64"))


@dataclasses.dataclass(frozen=True)
class QueryConfig:
    n_queries: int = 500
    seed: int = 1

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "n_queries")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    k: int = 50
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "k", "chunk_size")


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    ks: tuple[int, ...] = (1, 5, 10, 50)

    def __post_init__(self) -> None:
        checks.positive_ks(self, "ks")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    gallery: GalleryConfig = GalleryConfig()
    encoder: EncoderConfig = EncoderConfig()
    queries: QueryConfig = QueryConfig()
    search: SearchConfig = SearchConfig()
    metrics: MetricsConfig = MetricsConfig()

    def __post_init__(self) -> None:
        if max(self.metrics.ks) > self.search.k:  # R@K beyond the search depth would be R@k, silently
            checks.fail(self, "metrics.ks", f"values <= search.k = {self.search.k} (the search depth)",
                        list(self.metrics.ks))


@stage(version=1)
def make_gallery(config: GalleryConfig) -> tuple[Item, ...]:
    """Item i depends only on (seed, i), so growing the gallery keeps every existing item (and its cache)."""
    items = []
    for i in range(config.n_items):
        cluster, identity = np.random.default_rng([config.seed, i]).integers(0, [config.n_clusters, 2**31])
        items.append(Item(f"img{i:06d}", int(cluster), int(identity)))
    return tuple(items)


@stage(version=1)
def make_queries(config: QueryConfig, gallery: tuple[Item, ...]) -> tuple[Item, ...]:
    """A query is another view of a target item: same cluster and identity, fresh view noise."""
    rng = np.random.default_rng(config.seed)
    targets = rng.choice(len(gallery), size=min(config.n_queries, len(gallery)), replace=False)
    return tuple(dataclasses.replace(gallery[t], view=1 + int(rng.integers(0, 2**31))) for t in targets)


def _latent(config: EncoderConfig, item: Item) -> np.ndarray:
    centre = np.random.default_rng([config.seed, item.cluster]).standard_normal(config.latent_dim)
    identity = np.random.default_rng([config.seed, item.seed, 1]).standard_normal(config.latent_dim)
    view_noise = np.random.default_rng([config.seed, item.seed, item.view, 2]).standard_normal(config.latent_dim)
    return centre + 0.8 * identity + config.noise * view_noise


@stage(version=1, over="items", shard_size=512, helpers=[_latent])
def encode(config: EncoderConfig, items: tuple[Item, ...]) -> np.ndarray:
    """Embed items with a fixed random two-layer network, as unit vectors."""
    rng = np.random.default_rng(config.seed)
    w1 = rng.standard_normal((config.latent_dim, config.hidden_dim)) / np.sqrt(config.latent_dim)
    w2 = rng.standard_normal((config.hidden_dim, config.dim)) / np.sqrt(config.hidden_dim)
    latents = np.stack([_latent(config, item) for item in items])
    out = np.tanh(latents @ w1) @ w2
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(config.storage_dtype)


@stage(version=1)
def exact_search(config: SearchConfig, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Top-k gallery indices by cosine (chunked, so memory stays bounded)."""
    return exact_topk(queries, gallery, config.k, chunk_size=config.chunk_size)[0]


@stage(version=1)
def recall(config: MetricsConfig, ranking: np.ndarray, queries: tuple[Item, ...], gallery: tuple[Item, ...]) -> dict:
    """Recall@K of each query's source item, next to the chance level K / gallery size."""
    ids = [item.id for item in gallery]
    found = recall_at_k([[ids[i] for i in row] for row in ranking], [q.id for q in queries], config.ks)
    metrics = {}
    for k in config.ks:
        metrics[f"R@{k}"] = round(found[f"R@{k}"], 2)
        metrics[f"chance R@{k}"] = round(100 * min(k, len(gallery)) / len(gallery), 2)
    return metrics


@pipeline("synthetic_retrieval", SyntheticConfig)
def synthetic_retrieval(engine: Engine, config: SyntheticConfig) -> dict:
    """Synthetic gallery -> encode items and queries -> exact cosine search -> Recall@K."""
    gallery = engine.run(make_gallery, config.gallery)
    queries = engine.run(make_queries, config.queries, gallery=gallery)
    gallery_emb = engine.run(encode, config.encoder, step="encode_gallery", items=gallery)
    query_emb = engine.run(encode, config.encoder, step="encode_queries", items=queries)
    ranking = engine.run(exact_search, config.search, queries=query_emb, gallery=gallery_emb)
    metrics = engine.run(recall, config.metrics, ranking=ranking, queries=queries, gallery=gallery)
    return {"ranking": ranking, "metrics": metrics}
