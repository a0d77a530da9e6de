"""Runs an experiment's runs on a store, writes run records, and explains dry-run misses."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import time
from typing import Any

from ..engine import Artifact, Engine, Step, Store
from ..engine.codec import describe
from ..engine.fingerprint import code_changes
from ..engine.hashing import digest
from ..engine.progress import progress_enabled
from ..engine.provenance import environment_changes, package_versions
from ..ordering import metric_order_of
from .environment import environment
from .experiment import Experiment, RunSpec

__all__ = ["RunOutcome", "run_experiment", "explain_step", "artifact_keys", "config_diff", "free_run_name",
           "summarise_steps", "cold_cost"]


@dataclasses.dataclass
class RunOutcome:
    name: str
    steps: list[Step]
    outputs: dict[str, Any]
    metrics: Any = None
    seconds: float = 0.0
    explanations: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    renamed_from: str | None = None  # the requested name, when it held a run with a different configuration

    def counts(self) -> dict[str, int]:
        """Steps by what happened: computed, cached (found in the store), reused (the same call, with the
        same key, computed earlier in this run: identical inputs reached twice), read (volatile stages)."""
        return summarise_steps(self.steps)


def run_experiment(exp: Experiment, store: Store, *, dry_run: bool = False, progress: bool = True,
                   executor: Any = None, replace: bool = False) -> list[RunOutcome]:
    """Run every run of ``exp``. A run name that already holds a different run (configuration or output keys,
    :func:`free_run_name`) is kept: the new run gets the first free ``NAME~2``, ``NAME~3``... (``replace=True``
    overwrites instead)."""
    return [_run_one(exp, spec, store, dry_run=dry_run, progress=progress, executor=executor, replace=replace)
            for spec in exp.runs]


def _run_one(exp: Experiment, spec: RunSpec, store: Store, *, dry_run: bool, progress: bool, executor: Any,
             replace: bool = False) -> RunOutcome:
    engine = Engine(store, dry_run=dry_run, progress=progress, executor=executor)
    started = time.time()
    with progress_enabled(progress and not dry_run):  # stages that report their own progress follow --quiet
        outputs = exp.pipeline.build(engine, spec.config)
    outcome = RunOutcome(spec.name, engine.steps, outputs, seconds=time.time() - started)
    if dry_run:
        previous = store.get_run(spec.name)
        before = {s["step"]: s for s in (previous or {}).get("steps", [])}
        for step in engine.steps:
            if step.status in ("miss", "partial", "pending"):
                outcome.explanations[step.step] = explain_step(step, before.get(step.step), previous is not None)
        return outcome
    metrics = outputs.get("metrics")
    outcome.metrics = metrics.value if isinstance(metrics, Artifact) else None
    outcome.seconds = time.time() - started
    config_hash = digest(spec.config)
    output_keys = {k: v.key for k, v in outputs.items() if isinstance(v, Artifact)}
    outcome.name = free_run_name(store, spec.name, config_hash, output_keys, replace=replace)
    outcome.renamed_from = spec.name if outcome.name != spec.name else None
    cost = cold_cost(store, engine.steps)
    store.put_run(outcome.name, {
        "experiment": exp.source, "pipeline": exp.pipeline.name, "config": describe(spec.config),
        "config_hash": config_hash, "sweep_point": describe(dict(spec.sweep_point)),
        "steps": [s.to_json() for s in engine.steps],
        "outputs": {k: {"key": v.key, "content": v.content} for k, v in outputs.items() if isinstance(v, Artifact)},
        "artifacts": artifact_keys(engine.steps), "metrics": describe(outcome.metrics),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(outcome.seconds, 3), "versions": package_versions(), "environment": environment(),
        "metric_order": metric_order_of(outcome.metrics), "cold": cost, "commit": source_commit(),
        "cold_seconds": round(sum(c["seconds"] for c in cost.values()), 3),
    })
    return outcome


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit of the cirkit source tree that ran (``+dirty`` with uncommitted changes to tracked
    files), or None when cirkit is not running from a git checkout (an installed wheel)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def free_run_name(store: Store, name: str, config_hash: str, output_keys: dict[str, str], *,
                  replace: bool = False) -> str:
    """``name`` if it is free, holds this run, or ``replace``; else the first ``name~N`` that is free or holds
    this run. A stored run is this run when its configuration hash *and* the keys of its outputs are equal:
    the hash leaves out settings that reach results only through an artifact (``lvlm.align``: the aligned
    checkpoint), and a different cirkit or keyed package can compute other outputs from one configuration, so a
    run is never silently overwritten by a different computation."""
    if replace:
        return name
    candidate, n = name, 1
    while True:
        existing = store.get_run(candidate)
        if existing is None or (existing.get("config_hash") == config_hash
                                and _recorded_output_keys(existing) == output_keys):
            return candidate
        n += 1
        candidate = f"{name}~{n}"


def _recorded_output_keys(record: dict) -> dict[str, str] | None:
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return None
    return {k: v.get("key") for k, v in outputs.items() if isinstance(v, dict)}


def summarise_steps(steps: list[Step]) -> dict[str, int]:
    counts = {"computed": 0, "cached": 0, "reused": 0, "read": 0}
    made_here: set[str] = set()
    for s in steps:
        if s.status == "hit":
            counts["reused" if s.key in made_here else "cached"] += 1
        elif s.status in ("computed", "read"):
            counts[s.status] += 1
            made_here.add(s.key or "")
    return counts


def cold_cost(store: Store, steps: list[Step]) -> dict[str, dict]:
    """Per step, what computing it cost when it was computed (from its record, so a cached rerun keeps the
    cold numbers): seconds, items, and what its output reports (model calls, fallbacks)."""
    out: dict[str, dict] = {}
    for s in steps:
        if not s.key or s.status not in ("hit", "computed", "read"):
            continue
        record = store.get_record(s.key) if s.status == "hit" else None
        seconds = float(record.get("seconds", 0.0)) if record else s.seconds
        entry: dict[str, Any] = {"seconds": round(seconds, 3), "status": s.status}
        if s.items_total is not None:
            entry["items"] = s.items_total
        if s.report:
            entry["report"] = s.report
        out[s.step] = entry
    return out


def artifact_keys(steps: list[Step]) -> list[str]:
    return sorted({s.key for s in steps if s.key})


def explain_step(step: Step, before: dict | None, had_previous_run: bool) -> list[str]:
    """Why a step is not a hit, compared with the same step in the last run of this experiment."""
    if before is None:
        return ["not in the last run of this experiment" if had_previous_run else "no earlier run of this experiment"]
    reasons = []
    if before.get("version") != step.version:
        reasons.append(f"stage version {before.get('version')} -> {step.version}")
    if before.get("code") != step.code:
        reasons += code_changes(before.get("deps"), step.deps)
    if "environment" in before:  # run records written before environments were keyed have none
        reasons += environment_changes(before["environment"], step.environment)
    for path, old, new in config_diff(before.get("config"), step.config):
        reasons.append(f"config {path}: {old!r} -> {new!r}")
    for name, content in step.inputs.items():
        old = before.get("inputs", {}).get(name)
        if content is None:
            reasons.append(f"{name}: upstream recomputes")
        elif old != content:
            reasons.append(f"{name} changed ({(old or 'none')[:8]} -> {content[:8]})")
    if not reasons:
        reasons.append("same as the last run, but its record or content is missing from this store")
    return reasons


def config_diff(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += config_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if old == new else [(path or "(config)", old, new)]
