"""Compare two runs artifact by artifact: configs, shared and differing steps, metric deltas, target rank
changes, model output text changes, embeddings within a tolerance, and model drift."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import Store
from ..engine.codec import UnknownType
from ..engine.fingerprint import code_changes
from ..engine.provenance import environment_changes
from ..engine.store import MissingContent
from ..ordering import flatten, order_columns
from .environment import environment_differences
from .runner import config_diff

__all__ = ["diff_runs", "stored_value"]


def stored_value(store: Store, content: str | None) -> Any:
    """The value stored under ``content``, or None when it is absent or of a type this cirkit does not know."""
    if not content:
        return None
    try:
        return store.get_value(content)
    except (MissingContent, UnknownType):
        return None


def _target_ranks(split: Any, ranking: Any) -> dict[str, int | None]:
    """Query id -> 0-based rank of its first valid target (None if not retrieved)."""
    out = {}
    for q, (query, truth) in enumerate(zip(split.queries, split.truths or (), strict=False)):
        valid = set(truth.valid())
        ids = ranking.ranked_ids(q)
        out[query.id] = next((i for i, g in enumerate(ids) if g in valid), None)
    return out


def _compare_values(a: Any, b: Any, tolerance: float) -> dict | None:
    """What differs between two outputs of the same step, for the kinds of values worth explaining."""
    kind_a = type(a).__name__
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape:
            return {"kind": "array", "shapes": [list(a.shape), list(b.shape)]}
        if a.dtype.kind in "fc":
            worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
            return {"kind": "array", "max_abs_diff": worst, "within_tolerance": worst <= tolerance}
        return {"kind": "array", "changed": int(np.sum(a != b)), "of": int(a.size)}
    if kind_a == "Answers" and type(b).__name__ == "Answers":
        changed = [i for i, (x, y) in enumerate(zip(a.values, b.values, strict=False)) if x != y]
        models_a, models_b = sorted(set(a.models)), sorted(set(b.models))
        out = {"kind": "answers", "changed": len(changed), "of": len(a.values),
               "examples": [{"index": i, "a": str(a.values[i])[:200], "b": str(b.values[i])[:200]} for i in changed[:5]]}
        if models_a != models_b:
            out["drift"] = {"a": models_a, "b": models_b}
        return out
    if kind_a == "BackendIdentity" and type(b).__name__ == "BackendIdentity" and (a.model, a.snapshot) != (b.model, b.snapshot):
        return {"kind": "backend", "drift": {"a": f"{a.model}@{a.snapshot}", "b": f"{b.model}@{b.snapshot}"}}
    if isinstance(a, tuple) and isinstance(b, tuple) and all(isinstance(x, str) for x in a + b):
        changed = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
        return {"kind": "texts", "changed": len(changed) + abs(len(a) - len(b)), "of": max(len(a), len(b)),
                "examples": [{"index": i, "a": a[i][:200], "b": b[i][:200]} for i in changed[:5]]}
    return None


def diff_runs(store: Store, run_a: str, run_b: str, *, tolerance: float = 1e-3, values: bool = True) -> dict:
    a, b = store.get_run(run_a), store.get_run(run_b)
    for name, rec in ((run_a, a), (run_b, b)):
        if rec is None:
            raise KeyError(f"no run named {name!r} in {store.location}")
    steps_a = {s["step"]: s for s in a["steps"]}
    steps_b = {s["step"]: s for s in b["steps"]}
    report: dict[str, Any] = {
        "runs": [run_a, run_b],
        "config": [{"field": p, "a": x, "b": y} for p, x, y in config_diff(a.get("config"), b.get("config"))],
        "shared": sorted(n for n in steps_a if n in steps_b and _same(steps_a[n], steps_b[n])),
        "only_a": sorted(set(steps_a) - set(steps_b)), "only_b": sorted(set(steps_b) - set(steps_a)),
        "differ": [], "metrics": [], "rank_changes": {}, "drift": [],
        "environment": environment_differences(a.get("environment"), b.get("environment")),
    }
    for name in sorted(n for n in steps_a if n in steps_b and not _same(steps_a[n], steps_b[n])):
        sa, sb = steps_a[name], steps_b[name]
        entry: dict[str, Any] = {"step": name, "same_content": sa["output"] == sb["output"],
                                 "why": [f"{p}: {x!r} -> {y!r}" for p, x, y in config_diff(sa["config"], sb["config"])]}
        entry["why"] += [f"input {k} changed" for k in sa["inputs"] if sa["inputs"].get(k) != sb["inputs"].get(k)]
        if sa["version"] != sb["version"]:
            entry["why"].append(f"stage version {sa['version']} -> {sb['version']}")
        if sa["code"] != sb["code"]:
            entry["why"] += code_changes(sa.get("deps"), sb.get("deps") or {})
        if "environment" in sa and "environment" in sb:
            entry["why"] += environment_changes(sa["environment"], sb["environment"])
        if sa["key"] == sb["key"]:
            entry["why"].append("same inputs, new output (it reads files or a server)")
        if values and not entry["same_content"]:
            compared = _compare_values(stored_value(store, sa["output"]), stored_value(store, sb["output"]), tolerance)
            if compared:
                entry["content"] = compared
                if "drift" in compared:
                    report["drift"].append({"step": name, **compared["drift"]})
        report["differ"].append(entry)
        if values and name.endswith("evaluate") and not entry["same_content"]:
            report["rank_changes"][name] = _rank_changes(store, sa, sb)
    ma, mb = flatten(a.get("metrics") or {}), flatten(b.get("metrics") or {})
    for key in order_columns([*ma, *mb], a.get("metric_order") or b.get("metric_order")):
        x, y = ma.get(key), mb.get(key)
        delta = round(y - x, 6) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
        if x != y:
            report["metrics"].append({"metric": key, "a": x, "b": y, "delta": delta})
    return report


def _same(a: dict, b: dict) -> bool:
    """Same key and same output (volatile steps, which read the world, can change output under one key)."""
    return a["key"] == b["key"] and a["output"] == b["output"]


def _rank_changes(store: Store, sa: dict, sb: dict) -> dict:
    """Per query, the target's rank in both runs (only queries that moved), from the evaluate step's inputs."""
    def load(step, name):
        key = step["input_keys"].get(name)
        rec = store.get_record(key) if key else None
        return stored_value(store, rec["output"]) if rec else None

    split_a, split_b = load(sa, "split"), load(sb, "split")
    rank_a, rank_b = load(sa, "ranking"), load(sb, "ranking")
    if None in (split_a, split_b, rank_a, rank_b):
        return {"note": "inputs not available in this store"}
    ra, rb = _target_ranks(split_a, rank_a), _target_ranks(split_b, rank_b)
    moved = {q: {"a": ra[q], "b": rb.get(q)} for q in ra if q in rb and ra[q] != rb[q]}
    better = sum(1 for m in moved.values() if m["b"] is not None and (m["a"] is None or m["b"] < m["a"]))
    return {"moved": len(moved), "better": better, "worse": len(moved) - better,
            "queries": dict(list(moved.items())[:50])}
