"""Retrieval metrics exactly as the benchmarks define them. All take ranked id lists (best first).

Percentages (0-100), as papers report them. Every function documents its protocol choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["recall_at_k", "recall_subset_at_k", "circo_map_at_k", "circo_metrics", "fashioniq_average",
           "genecis_recall", "chat_hits"]


def _pct(x: float) -> float:
    return round(100.0 * float(x), 4)


def recall_at_k(ranked: Sequence[Sequence[str]], targets: Sequence[str], ks: Sequence[int] = (1, 5, 10, 50)) -> dict:
    """R@K: the share of queries whose target is among the first K (a target of None is skipped)."""
    pairs = [(r, t) for r, t in zip(ranked, targets) if t is not None]
    if not pairs:
        raise ValueError("no query has a target: recall needs ground truth")
    ranks = np.array([list(r).index(t) if t in r else np.inf for r, t in pairs])
    return {f"R@{k}": _pct(np.mean(ranks < k)) for k in ks}


def recall_subset_at_k(ranked_subset: Sequence[Sequence[str]], targets: Sequence[str], ks: Sequence[int] = (1, 2, 3)) -> dict:
    """CIRR Recall_subset@K: R@K within each query's img_set, the reference removed (ranked by the caller)."""
    return {k.replace("R@", "Rs@"): v for k, v in recall_at_k(ranked_subset, targets, ks).items()}


def _average_precision(ranked: Sequence[str], gts: set[str], k: int) -> float:
    """CIRCO AP@K: sum of precision@i at each hit i <= K, divided by min(#ground truths, K)."""
    hits, total = 0, 0.0
    for i, item in enumerate(ranked[:k]):
        if item in gts:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(gts), k) if gts else 0.0


def circo_map_at_k(ranked: Sequence[Sequence[str]], gts: Sequence[Sequence[str]], ks: Sequence[int] = (5, 10, 25, 50)) -> dict:
    """mAP@K over all ground truths of each query (duplicates in a ranking count once, at the first place)."""
    dedup = [list(dict.fromkeys(r)) for r in ranked]
    return {f"mAP@{k}": _pct(np.mean([_average_precision(r, set(g), k) for r, g in zip(dedup, gts)])) for k in ks}


def circo_metrics(ranked: Sequence[Sequence[str]], targets: Sequence[str], gts: Sequence[Sequence[str]],
                  aspects: Sequence[Sequence[str]], ks: Sequence[int] = (5, 10, 25, 50)) -> dict:
    """CIRCO's full report: mAP@K over all ground truths, R@K on the annotated target alone, and mAP@10 per
    semantic aspect (a query counts toward every aspect it is labelled with)."""
    out = circo_map_at_k(ranked, gts, ks)
    out.update(recall_at_k(ranked, targets, ks))
    per_aspect: dict[str, list[float]] = defaultdict(list)
    for r, g, labels in zip(ranked, gts, aspects):
        ap = _average_precision(list(dict.fromkeys(r)), set(g), 10)
        for label in labels:
            per_aspect[label].append(ap)
    for label in sorted(per_aspect):
        out[f"mAP@10 {label}"] = _pct(np.mean(per_aspect[label]))
    return out


def fashioniq_average(per_category: dict[str, dict]) -> dict:
    """FashionIQ's table: R@10 and R@50 per category and their mean over categories (not over queries)."""
    out = {}
    for cat, metrics in per_category.items():
        for k in ("R@10", "R@50"):
            out[f"{cat} {k}"] = metrics[k]
    for k in ("R@10", "R@50"):
        out[f"avg {k}"] = round(float(np.mean([m[k] for m in per_category.values()])), 4)
    out["avg"] = round((out["avg R@10"] + out["avg R@50"]) / 2, 4)
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
        found |= np.array([t in list(rk)[:k] for rk, t in zip(ranked, targets)])
        out[f"Hits@{k} r{r}"] = _pct(found.mean())
    return out
