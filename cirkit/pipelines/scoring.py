"""The tail every method shares: protocol defaults per benchmark, exact or ScaNN retrieval, and then metrics
(splits with public ground truth) or the server's submission files (test splits)."""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks
from ..encoders.stages import embed_images, embed_texts
from ..engine import stage
from ..evaluation.stages import DEFAULT_KS, EvalConfig, SubmissionConfig, evaluate, make_submission
from ..methods.baselines import gallery_images
from ..methods.imagescope.stages import subset_by_rank_then_score
from ..retrieval.stages import RetrievalConfig, SubsetOrderConfig, build_index, restrict_to_subset, retrieve
from .parts import Part
from .setup import Setup, benchmark_of, has_ground_truth, split_of

__all__ = ["OFFICIAL_EXCLUDE_REFERENCE", "resolve_protocol", "rank", "score", "score_reranked", "notice",
           "text_to_image", "require_deep_enough", "DEEPEST_K"]

# Whether the benchmark's own evaluation removes the reference image from the gallery. CIRCO: the benchmark
# authors' code (SEARLE) and CIReVL remove it; FashionIQ does not; GeneCIS ranks each query's own gallery.
OFFICIAL_EXCLUDE_REFERENCE = {"cirr": True, "circo": True, "fashioniq": False, "genecis": False}


def resolve_protocol(retrieval: RetrievalConfig, benchmark: str) -> RetrievalConfig:
    """Fill the switches left at None with the benchmark's official value (the resolved config is what the
    retrieve stage records)."""
    exclude = retrieval.exclude_reference
    if exclude is None:
        exclude = OFFICIAL_EXCLUDE_REFERENCE.get(benchmark, False)
    subset = retrieval.subset
    if subset is None:
        subset = benchmark == "genecis"
    return dataclasses.replace(retrieval, exclude_reference=exclude, subset=subset)


def notice(setup: Setup) -> dict:
    """A line the CLI prints (dry runs included, so before any model call) when a run ends in files."""
    if has_ground_truth(setup.data):
        return {}
    return {"notice": f"{benchmark_of(setup.data)} {split_of(setup.data)} has no public ground truth: no metrics, "
                      f"only submission files (cirkit export RUN submission FILE)"}


def rank(setup: Setup, retrieval: RetrievalConfig, part: Part, queries, gallery, name: str):
    """The full ranking under the benchmark's protocol, by exact search or a cached ScaNN index."""
    cfg = resolve_protocol(retrieval, benchmark_of(setup.data))
    index = None
    if cfg.backend == "scann" and not cfg.subset:
        index = part.engine.run(build_index, setup.scann, gallery=gallery, step=f"{name}/index")
    return part.engine.run(retrieve, cfg, split=part.split, queries=queries, gallery=gallery, index=index,
                           step=f"{name}/retrieve")


@stage(version=1)
def with_selection(config: None, metrics: dict, report: dict) -> dict:
    """Metrics next to what missing images cost (only when images were skipped)."""
    return {**metrics, **report}


def _finish(setup: Setup, part: Part, ranking, subset, name: str) -> dict:
    engine = part.engine
    if not has_ground_truth(setup.data):
        return {"submission": engine.run(make_submission, SubmissionConfig(), split=part.split, ranking=ranking,
                                         subset_ranking=subset, step=f"{name}/submission")}
    metrics = engine.run(evaluate, EvalConfig(), split=part.split, ranking=ranking, subset_ranking=subset,
                         step=f"{name}/evaluate")
    if setup.data.missing_images == "skip":
        metrics = engine.run(with_selection, None, metrics=metrics, report=part.report, step=f"{name}/with_selection")
    return {"metrics": metrics}


def score(setup: Setup, retrieval: RetrievalConfig, part: Part, queries, gallery, name: str) -> tuple:
    """(ranking, {"metrics": ...} or {"submission": ...}); CIRR adds the subset ranking (Recall_subset)."""
    ranking = rank(setup, retrieval, part, queries, gallery, name)
    subset = None
    if benchmark_of(setup.data) == "cirr":
        sub = dataclasses.replace(retrieval, k=3, subset=True, exclude_reference=True, backend="exact")
        subset = part.engine.run(retrieve, sub, split=part.split, queries=queries, gallery=gallery, index=None,
                                 step=f"{name}/retrieve_subset")
    return ranking, _finish(setup, part, ranking, subset, name)


def score_reranked(setup: Setup, part: Part, ranking, name: str, *, full=None, by_score=None) -> dict:
    """Metrics or submission files of a re-ranked list; on CIRR the subset ranking follows its order, and the
    members it does not reach follow ``by_score`` (their stage-1 subset ranking) when given. ``full``: the
    re-ranked list is itself a subset ranking (CIRR's subset protocol), scored beside the gallery ranking ``full``."""
    if full is not None:
        return _finish(setup, part, full, ranking, name)
    subset = None
    if benchmark_of(setup.data) == "cirr" and by_score is not None:
        subset = part.engine.run(subset_by_rank_then_score, None, ranking=ranking, by_score=by_score,
                                 step=f"{name}/subset")
    elif benchmark_of(setup.data) == "cirr":
        subset = part.engine.run(restrict_to_subset, SubsetOrderConfig(), split=part.split, ranking=ranking,
                                 step=f"{name}/subset")
    return _finish(setup, part, ranking, subset, name)


def text_to_image(setup: Setup, retrieval: RetrievalConfig, part: Part, clip, targets, name: str) -> dict:
    """The tail of the text-only methods (CIReVL, OSrCIR, LDRE): embed the target descriptions and rank the
    gallery with CLIP; the outputs carry the target texts."""
    engine = part.engine
    queries = engine.run(embed_texts, setup.embed, texts=targets, model=clip, step="embed_targets")
    _, outputs = score(setup, retrieval, part, queries, embedded_gallery(setup, part, clip), name)
    return {**outputs, "targets": targets}


def embedded_gallery(setup: Setup, part: Part, clip):
    """The part's gallery images embedded with ``clip`` (one cached step every method shares)."""
    images = part.engine.run(gallery_images, None, split=part.split, step="gallery")
    return part.engine.run(embed_images, setup.embed, images=images, model=clip, step="embed_gallery")


DEEPEST_K = max(k for ks in DEFAULT_KS.values() for k in ks)  # the largest K a benchmark's metrics use


def require_deep_enough(config) -> None:
    """Metrics at K deeper than the retrieved list would silently be the metrics at ``retrieval.k``."""
    if config.retrieval.k < DEEPEST_K:
        checks.fail(config, "retrieval.k", f"an integer >= {DEEPEST_K} (the largest K the benchmark metrics report)",
                    config.retrieval.k)
