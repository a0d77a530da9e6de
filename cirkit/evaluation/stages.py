"""Evaluation stages: the right metrics for each benchmark, from rankings and ground truth."""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks
from ..data.model import Split
from ..engine import stage
from ..retrieval.ranking import Ranking
from . import metrics as m

__all__ = ["EvalConfig", "evaluate", "evaluate_chat", "benchmark_metrics"]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] = ()  # empty: the benchmark's own (see benchmark_metrics)

    def __post_init__(self) -> None:
        checks.positive_ks(self, "ks", allow_empty=True)


DEFAULT_KS = {"cirr": (1, 5, 10, 50), "circo": (5, 10, 25, 50), "flickr30k": (1, 5, 10), "mscoco": (1, 5, 10)}


def benchmark_metrics(split: Split, ranked: list[list[str]], subset_ranked: list[list[str]] | None = None,
                      ks: tuple[int, ...] = ()) -> dict:
    """The metrics a benchmark reports, computed from ranked id lists."""
    if split.truths is None:
        raise ValueError(f"{split.benchmark} {split.split} has no public ground truth; write a submission instead")
    truths = split.truths
    targets = [t.target for t in truths]
    name = split.benchmark
    if name == "circo":
        return m.circo_metrics(ranked, targets, [t.valid() for t in truths], [t.aspects for t in truths],
                               ks or DEFAULT_KS["circo"])
    if name.startswith("fashioniq"):
        return m.recall_at_k(ranked, targets, ks or (10, 50))
    if name.startswith("genecis"):
        return m.genecis_recall(subset_ranked or ranked, targets)
    out = m.recall_at_k(ranked, targets, ks or DEFAULT_KS.get(name, (1, 5, 10, 50)))
    if name == "cirr" and subset_ranked is not None:
        out.update(m.recall_subset_at_k(subset_ranked, targets))
    return out


@stage(version=2, helpers=[benchmark_metrics])  # 2: full-precision metrics
def evaluate(config: EvalConfig, split: Split, ranking: Ranking, subset_ranking: Ranking | None) -> dict:
    subset = subset_ranking.all_ranked_ids() if subset_ranking is not None else None
    return benchmark_metrics(split, ranking.all_ranked_ids(), subset, config.ks)


@stage(version=2)  # 2: full-precision metrics
def evaluate_chat(config: EvalConfig, split: Split, rankings: tuple[Ranking, ...]) -> dict:
    """Hits@10 (or the first of ``ks``) per round, cumulative over rounds."""
    k = config.ks[0] if config.ks else 10
    return m.chat_hits([r.all_ranked_ids(k) for r in rankings], [t.target for t in split.truths], k)


@dataclasses.dataclass(frozen=True)
class SubmissionConfig:
    version: str = "rc2"  # CIRR's annotation version


@stage(version=1)
def make_submission(config: SubmissionConfig, split: Split, ranking: Ranking, subset_ranking: Ranking | None) -> dict:
    """Server files for a test split: CIRR ``recall`` (+ ``recall_subset`` when a subset ranking is given)
    or CIRCO; export one with ``cirkit export RUN submission FILE``."""
    from .submissions import circo_submission, cirr_submission

    if split.benchmark == "cirr":
        out = {"recall": cirr_submission(ranking.as_dict(), "recall", config.version)}
        if subset_ranking is not None:
            out["recall_subset"] = cirr_submission(subset_ranking.as_dict(), "recall_subset", config.version)
        return out
    if split.benchmark == "circo":
        return {"circo": circo_submission(ranking.as_dict())}
    raise ValueError(f"{split.benchmark} has no evaluation server submission format")
