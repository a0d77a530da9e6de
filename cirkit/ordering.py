"""The order people read results in: tasks as the pipeline declares them, metrics by family then K
(R@1 < R@5 < R@10 < R@50, never alphabetically), chance rows and chance metrics last.

Every table of cirkit (``show``, ``ls``, ``diff``, ``evaluate``, sweep summaries, the HTML report) orders
through these helpers, so the terminal and the page agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["metric_sort_key", "order_metrics", "order_rows", "headline_metrics", "is_chance", "metric_order_of",
           "order_columns", "flatten"]

# Families in the order papers report them; an unknown family sorts after these, by name.
_FAMILIES = ("R", "Recall", "Rs", "Recall_subset", "Hits", "mAP", "MRR", "NDCG", "nDCG", "P")
_METRIC = re.compile(r"^(?P<family>[A-Za-z_]+)@(?P<k>\d+)(?P<rest>.*)$")
_NUMBER = re.compile(r"(\d+)")


def is_chance(name: str) -> bool:
    """A chance level (a metric named ``chance R@1`` or a row named ``task · chance``)."""
    return "chance" in name.lower()


def _natural(text: str) -> tuple:
    """``r10`` after ``r2``: digits compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in _NUMBER.split(text))


def metric_sort_key(name: str) -> tuple:
    """Sort key of one metric name: chance last, then family, then K as a number, then the rest naturally."""
    chance = is_chance(name)
    bare = re.sub(r"(?i)\bchance\b\s*", "", name).strip()
    match = _METRIC.match(bare)
    if not match:
        return (chance, len(_FAMILIES) + 1, _natural(bare), 0, ())
    family = match["family"]
    rank = _FAMILIES.index(family) if family in _FAMILIES else len(_FAMILIES)
    return (chance, rank, family if rank == len(_FAMILIES) else "", int(match["k"]), _natural(match["rest"]))


def order_metrics(names: Iterable[str]) -> list[str]:
    """Metric names in reading order (a stable sort, so ties keep the order they came in)."""
    return sorted(dict.fromkeys(names), key=metric_sort_key)


def order_rows(names: Iterable[str], declared: Iterable[str] | None = None) -> list[str]:
    """Row names (tasks, ``task · variant``) in the order the pipeline declared them, chance rows last
    within their task. ``declared`` is the recorded order; without it the given order is kept."""
    names = list(dict.fromkeys(names))
    position = {n: i for i, n in enumerate(declared or ())}
    tasks: dict[str, int] = {}
    for n in sorted(names, key=lambda n: position.get(n, len(position) + names.index(n))):
        tasks.setdefault(n.partition(" · ")[0], len(tasks))

    def key(n: str) -> tuple:
        return (tasks[n.partition(" · ")[0]], is_chance(n), position.get(n, len(position) + names.index(n)))

    return sorted(names, key=key)


def order_columns(names: Iterable[str], declared: Iterable[str] | None = None) -> list[str]:
    """Flattened metric names (``task · variant/R@1``): groups (the part before the last ``/``) in declared
    order with chance groups last, and metrics in reading order within each group."""
    names = list(dict.fromkeys(names))
    groups = order_rows([n.rpartition("/")[0] for n in names], declared)
    position = {g: i for i, g in enumerate(groups)}
    return sorted(names, key=lambda n: (position[n.rpartition("/")[0]], metric_sort_key(n.rpartition("/")[2])))


def metric_order_of(metrics: Any, prefix: str = "") -> list[str]:
    """The flattened ``a/b`` names of a (nested) metrics dict in its insertion order: recorded with a run,
    because the store writes JSON with sorted keys and the pipeline's order would be lost."""
    if not isinstance(metrics, dict):
        return []
    out = []
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        out.append(name)
        out += metric_order_of(v, f"{name}/")
    return out


def headline_metrics(metrics: Any, declared: Iterable[str] | None = None, limit: int = 4) -> tuple[str, dict[str, Any]]:
    """The few numbers that summarise a run, as (row, {metric: value}): the first non-chance row's first
    metrics in reading order (row ``""`` for flat metrics), never chance values."""
    if not isinstance(metrics, dict) or not metrics:
        return "", {}
    if not all(isinstance(v, dict) for v in metrics.values()):
        flat = {k: v for k, v in metrics.items() if not isinstance(v, dict) and not is_chance(k)}
        return "", {k: flat[k] for k in order_metrics(flat)[:limit]}
    rows = [r for r in order_rows(metrics, declared) if not is_chance(r)]
    if not rows:
        return "", {}
    values = {k: v for k, v in metrics[rows[0]].items() if not isinstance(v, dict) and not is_chance(k)}
    return rows[0], {k: values[k] for k in order_metrics(values)[:limit]}


def flatten(tree: Any, sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """Nested tables to one level: ``{"s1": {"R@1": 2}}`` -> ``{"s1/R@1": 2}`` (the names tables show)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        flat.update(flatten(v, sep, f"{prefix}{sep}{k}" if prefix else str(k)))
    return flat
