"""Runs an experiment's runs on a store, writes run records, and explains dry-run misses."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ..engine import Artifact, Engine, Step, Store
from ..engine.codec import describe
from ..engine.fingerprint import code_changes
from ..engine.hashing import digest
from ..engine.provenance import environment_changes, package_versions
from .environment import environment
from .experiment import Experiment, RunSpec

__all__ = ["RunOutcome", "run_experiment", "explain_step", "artifact_keys", "config_diff"]


@dataclasses.dataclass
class RunOutcome:
    name: str
    steps: list[Step]
    outputs: dict[str, Any]
    metrics: Any = None
    seconds: float = 0.0
    explanations: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def run_experiment(exp: Experiment, store: Store, *, dry_run: bool = False, progress: bool = True,
                   executor: Any = None) -> list[RunOutcome]:
    return [_run_one(exp, spec, store, dry_run=dry_run, progress=progress, executor=executor) for spec in exp.runs]


def _run_one(exp: Experiment, spec: RunSpec, store: Store, *, dry_run: bool, progress: bool, executor: Any) -> RunOutcome:
    engine = Engine(store, dry_run=dry_run, progress=progress, executor=executor)
    started = time.time()
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
    store.put_run(spec.name, {
        "experiment": exp.source, "pipeline": exp.pipeline.name, "config": describe(spec.config),
        "config_hash": digest(spec.config), "sweep_point": describe(dict(spec.sweep_point)),
        "steps": [s.to_json() for s in engine.steps],
        "outputs": {k: {"key": v.key, "content": v.content} for k, v in outputs.items() if isinstance(v, Artifact)},
        "artifacts": artifact_keys(engine.steps), "metrics": describe(outcome.metrics),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(outcome.seconds, 3), "versions": package_versions(), "environment": environment(),
    })
    return outcome


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
