"""Parts of a data selection (FashionIQ categories, GeneCIS tasks): one method run per part, with step names
prefixed by the part, and the per-part outputs combined (metrics averaged as the benchmark reports them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine import Artifact, Engine, stage
from ..evaluation.metrics import fashioniq_average

__all__ = ["Part", "PrefixedEngine", "over_parts", "combine_metrics", "collect_parts"]


class PrefixedEngine:
    """An engine whose step names carry a part's prefix (``dress/s1/retrieve``); "" leaves them unchanged."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        self._engine = engine
        self._prefix = prefix

    def run(self, stage_: Any, config: Any, *, step: str | None = None, **inputs: Any) -> Any:
        name = step or stage_.name
        return self._engine.run(stage_, config, step=f"{self._prefix}/{name}" if self._prefix else name, **inputs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._engine, attr)


@dataclasses.dataclass(frozen=True)
class Part:
    name: str  # "" when the selection has one part
    engine: Any  # the engine with this part's step prefix
    split: Artifact  # the selected split (query cuts applied, missing images handled)
    report: Artifact  # query and gallery counts, skipped ones included
    roles: Any  # EngineRoles on this part's engine


def _combine(benchmark: str, parts: dict) -> dict:
    recall = {name: {k: v for k, v in m.items() if k.startswith(("R@", "Rs@", "mAP@", "Hits@"))}
              for name, m in parts.items()}
    if benchmark == "fashioniq":
        out = fashioniq_average(recall)
    else:
        out = {f"{name} {k}": v for name, m in recall.items() for k, v in m.items()}
        for k in [k for k in next(iter(recall.values())) if all(k in m for m in recall.values())]:
            out[f"avg {k}"] = float(np.mean([m[k] for m in recall.values()]))
    for name, m in parts.items():
        out.update({f"{name} {k}": v for k, v in m.items() if k not in recall[name]})
    return out


@stage(version=1, helpers=[_combine, fashioniq_average])
def combine_metrics(config: None, benchmark: str, parts: dict) -> dict:
    """One table for several parts: FashionIQ's per-category R@10/R@50 and their average over categories;
    otherwise every part's metrics prefixed by its name and the mean over parts of each shared metric.
    Counts (skipped queries and the like) are kept per part. Tables by baseline are combined per baseline."""
    first = next(iter(parts.values()))
    if all(isinstance(v, dict) for v in first.values()):
        return {row: _combine(benchmark, {name: m[row] for name, m in parts.items()}) for row in first}
    return _combine(benchmark, parts)


@stage(version=1)
def collect_parts(config: None, parts: dict) -> dict:
    """Per-part outputs (submission files, say) as one mapping by part name."""
    return dict(parts)


def over_parts(engine: Engine, benchmark: str, parts: list[Part], body: Callable[[Part], dict]) -> dict:
    """Run ``body`` per part; with one part its outputs are the pipeline's, else metrics are combined and other
    artifacts collected by part. Plain strings (notices) pass through."""
    results = [(p.name, body(p)) for p in parts]
    if len(results) == 1:
        return results[0][1]
    out: dict = {}
    for key, first in results[0][1].items():
        if not isinstance(first, Artifact) and not hasattr(first, "step"):
            out[key] = first
            continue
        per_part = {name: outputs[key] for name, outputs in results}
        stage_ = combine_metrics if key.startswith("metrics") else collect_parts
        inputs = {"benchmark": benchmark} if stage_ is combine_metrics else {}
        out[key] = engine.run(stage_, None, parts=per_part, step=f"combine/{key.replace(' ', '_')}", **inputs)
    return out
