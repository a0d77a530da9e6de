"""Retrieval metrics exactly as the benchmarks define them. All take ranked id lists (best first).

Values are percentages (0-100) at full float precision, as computed: nothing is rounded here or where
metrics are stored (tables round for display only), so averages over categories or runs are exact.
Padding ids (``None``, or the ``-1`` rows a :class:`Ranking` drops) never count as hits.
Every function documents its protocol choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["recall_at_k", "recall_subset_at_k", "circo_map_at_k", "circo_metrics", "fashioniq_average",
           "genecis_recall", "chat_hits", "Duplicates"]

Duplicates = Literal["once", "official"]


def _pct(x: float) -> float:
    return 100.0 * float(x)


def _first_rank(ranked: Sequence[str], target: str) -> float:
    for i, item in enumerate(ranked):
        if item == target:
            return i
    return np.inf


def recall_at_k(ranked: Sequence[Sequence[str]], targets: Sequence[str | None], ks: Sequence[int] = (1, 5, 10, 50)) -> dict:
    """R@K: the share of queries whose target is among the first K (a target of None is skipped).

    A target listed twice counts once (R@K is "found or not")."""
    ranks = np.array([_first_rank(r, t) for r, t in zip(ranked, targets) if t is not None], float)
    if not len(ranks):
        raise ValueError("no query has a target: recall needs ground truth")
    return {f"R@{k}": _pct(np.mean(ranks < k)) for k in ks}


def recall_subset_at_k(ranked_subset: Sequence[Sequence[str]], targets: Sequence[str], ks: Sequence[int] = (1, 2, 3)) -> dict:
    """CIRR Recall_subset@K: R@K within each query's img_set, the reference removed (ranked by the caller)."""
    return {k.replace("R@", "Rs@"): v for k, v in recall_at_k(ranked_subset, targets, ks).items()}


def _hit_labels(ranked: Sequence[str], gts: set[str], duplicates: Duplicates) -> np.ndarray:
    """1 where a ranked id is a ground truth. ``once``: only an id's first occurrence counts (a repeat still
    takes its place); ``official``: every occurrence counts, as CIRCO's evaluation script does."""
    seen: set[str] = set()
    labels = np.zeros(len(ranked), float)
    for i, item in enumerate(ranked):
        if item in gts and (duplicates == "official" or item not in seen):
            labels[i] = 1.0
        seen.add(item)
    return labels


def _average_precision(labels: np.ndarray, n_gts: int, k: int) -> float:
    """CIRCO AP@K: sum of precision@i at each hit i <= K, divided by min(#ground truths, K)."""
    top = labels[:k]
    precisions = np.cumsum(top) * top / np.arange(1, len(top) + 1)
    return float(precisions.sum()) / min(n_gts, k) if n_gts else 0.0


def circo_map_at_k(ranked: Sequence[Sequence[str]], gts: Sequence[Sequence[str]], ks: Sequence[int] = (5, 10, 25, 50),
                   duplicates: Duplicates = "once") -> dict:
    """mAP@K over all ground truths of each query (see ``_hit_labels`` for ``duplicates``)."""
    labels = [_hit_labels(r, set(g), duplicates) for r, g in zip(ranked, gts)]
    return {f"mAP@{k}": _pct(np.mean([_average_precision(lab, len(set(g)), k) for lab, g in zip(labels, gts)]))
            for k in ks}


def circo_metrics(ranked: Sequence[Sequence[str]], targets: Sequence[str], gts: Sequence[Sequence[str]],
                  aspects: Sequence[Sequence[str]], ks: Sequence[int] = (5, 10, 25, 50),
                  duplicates: Duplicates = "once") -> dict:
    """CIRCO's full report: mAP@K over all ground truths, R@K on the annotated target alone, and mAP@10 per
    semantic aspect (a query counts toward every aspect it is labelled with).

    ``duplicates="official"`` reproduces the official script, which counts every occurrence of an id, in AP
    and in recall (a target listed twice in the top K adds 2 to that query's recall)."""
    out = circo_map_at_k(ranked, gts, ks, duplicates)
    if duplicates == "official":
        for k in ks:
            out[f"R@{k}"] = _pct(np.mean([sum(1 for x in list(r)[:k] if x == t) for r, t in zip(ranked, targets)]))
    else:
        out.update(recall_at_k(ranked, targets, ks))
    per_aspect: dict[str, list[float]] = defaultdict(list)
    for r, g, labels in zip(ranked, gts, aspects):
        ap = _average_precision(_hit_labels(r, set(g), duplicates), len(set(g)), 10)
        for label in labels:
            per_aspect[label].append(ap)
    for label in sorted(per_aspect):
        out[f"mAP@10 {label}"] = _pct(np.mean(per_aspect[label]))
    return out


def fashioniq_average(per_category: dict[str, dict], ks: Sequence[int] = (10, 50)) -> dict:
    """FashionIQ's table: R@K per category and their mean over categories (not over queries), from the
    unrounded per-category values; ``avg`` is the mean of the averaged R@Ks."""
    out = {}
    for cat, metrics in per_category.items():
        for k in ks:
            out[f"{cat} R@{k}"] = metrics[f"R@{k}"]
    for k in ks:
        out[f"avg R@{k}"] = float(np.mean([m[f"R@{k}"] for m in per_category.values()]))
    out["avg"] = float(np.mean([out[f"avg R@{k}"] for k in ks]))
    return out


def genecis_recall(ranked: Sequence[Sequence[str]], targets: Sequence[str]) -> dict:
    """GeneCIS R@1/2/3, each query ranked within its own gallery."""
    return recall_at_k(ranked, targets, (1, 2, 3))


def chat_hits(ranked_per_round: Sequence[Sequence[Sequence[str]]], targets: Sequence[str], k: int = 10) -> dict:
    """Hits@K per dialogue round, cumulative as ChatIR reports it: a query counts as found at round r if its
    target was in the top K at any round <= r. ``ranked_per_round[r][q]`` is query q's ranking at round r."""
    found = np.zeros(len(targets), bool)
    out = {}
    for r, ranked in enumerate(ranked_per_round):
        found |= np.array([t in list(rk)[:k] for rk, t in zip(ranked, targets)], bool)
        out[f"Hits@{k} r{r}"] = _pct(found.mean())
    return out
