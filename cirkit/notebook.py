"""A notebook API over a store: ``cirkit.open(store)`` -> runs -> steps -> artifacts as NumPy arrays,
dataclasses and pandas DataFrames, read straight from the content-addressed store (nothing is recomputed).

    ws = cirkit.open("artifacts")
    run = ws.runs["demo"]                 # or ws.run("demo"); list(ws.runs) names them
    run.metrics_frame()                   # one row per task/variant, metric columns in reading order
    run.steps["t2i/retrieve"].value       # the stored Ranking dataclass
    run.target_ranks()                    # per query: instruction, targets, rank of the first target
    run.ranking_frame(k=10)               # per query: its top-k gallery ids and scores
    run.texts()                           # per query: every per-query text the run produced
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from .engine import Store
from .ordering import order_columns
from .reporting.metrics import metric_rows
from .reporting.runs import open_run, query_text, step_costs, target_ranks

__all__ = ["Workspace", "Run", "StepView", "open_store"]


def _pandas():
    try:
        import pandas
    except ImportError as exc:  # pandas is an optional extra of the notebook API
        raise ImportError("DataFrames need pandas (pip install pandas)") from exc
    return pandas


@dataclasses.dataclass(frozen=True)
class StepView:
    """One step of a run: its record fields and, on demand, its stored output."""

    store: Store = dataclasses.field(repr=False)
    info: dict = dataclasses.field(repr=False)

    @property
    def name(self) -> str:
        return self.info["step"]

    @property
    def stage(self) -> str:
        return self.info["stage"]

    @property
    def key(self) -> str | None:
        return self.info.get("key")

    @property
    def config(self) -> Any:
        return self.info.get("config")

    @property
    def value(self) -> Any:
        """The output as stored: a NumPy array, a registered dataclass, or JSON-like values."""
        if not self.info.get("output"):
            raise LookupError(f"step {self.name!r} has no stored output")
        return self.store.get_value(self.info["output"])

    def __repr__(self) -> str:
        return f"StepView({self.name!r}, stage={self.stage!r}, key={(self.key or '')[:12]!r})"


class _Steps(Mapping):
    def __init__(self, store: Store, steps: list[dict]) -> None:
        self._steps = {s["step"]: StepView(store, s) for s in steps}

    def __getitem__(self, name: str) -> StepView:
        if name not in self._steps:
            raise KeyError(f"no step {name!r}; steps are {', '.join(self._steps)}")
        return self._steps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


class Run:
    """A named run: its record (``config``, ``versions``...), steps, metrics and per-query views."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        self._view = None
        self.record = store.get_run(name)
        if self.record is None:
            raise KeyError(f"no run named {name!r} in {store.location}")
        self.steps = _Steps(store, self.record.get("steps", []))

    def __repr__(self) -> str:
        return f"Run({self.name!r}, pipeline={self.record.get('pipeline')!r}, steps={len(self.steps)})"

    @property
    def config(self) -> dict:
        return self.record.get("config") or {}

    @property
    def metrics(self) -> Any:
        return self.record.get("metrics")

    def output(self, name: str) -> Any:
        """A named pipeline output (``metrics``, ``ranking``, a model folder...) as stored."""
        outputs = self.record.get("outputs") or {}
        if name not in outputs:
            raise KeyError(f"run {self.name!r} has outputs {', '.join(outputs)}, not {name!r}")
        return self.store.get_value(outputs[name]["content"])

    def input(self, step: str, name: str) -> Any:
        """The value of input ``name`` of ``step`` (e.g. the ranking an ``evaluate`` step scored)."""
        key = self.steps[step].info.get("input_keys", {}).get(name)
        record = self.store.get_record(key) if key else None
        if record is None:
            raise KeyError(f"step {step!r} has no stored input {name!r}")
        return self.store.get_value(record["output"])

    def metrics_frame(self):
        """One row per task (``task · variant``, declared order, chance last), metric columns in reading order."""
        rows = metric_rows(self.record)
        columns = order_columns(m for r in rows.values() for m in r)
        return _pandas().DataFrame([[r.get(c) for c in columns] for r in rows.values()],
                                   index=[n or "all" for n in rows], columns=columns)

    def steps_frame(self):
        """One row per step: stage, status of the last run, key, and the cold cost."""
        cost = step_costs(self.store, self.record)
        return _pandas().DataFrame(
            [{"step": s, "stage": v.stage, "status": v.info.get("status"), "key": (v.key or "")[:12],
              "cold_seconds": cost.get(s, {}).get("seconds"), "items": v.info.get("items_total")}
             for s, v in self.steps.items()]).set_index("step")

    def _evaluation(self):
        if self._view is None:
            self._view = open_run(self.store, self.name)
            if self._view.split is None or self._view.ranking is None:
                raise LookupError(f"run {self.name!r} has no evaluate step with a split and a ranking")
        return self._view

    def target_ranks(self):
        """Per query of the final evaluation: its text, its valid targets, the 1-based rank of the first
        target (NaN: not in the ranking's top k)."""
        view = self._evaluation()
        ranks = target_ranks(view.split, view.ranking)
        rows = [{"query": q.id, "text": query_text(q), "targets": tuple(t.valid()), "rank": ranks.get(q.id)}
                for q, t in zip(view.split.queries, view.split.truths or (), strict=False)]
        frame = _pandas().DataFrame(rows).set_index("query")
        frame["rank"] = frame["rank"].astype("Float64")
        return frame

    def ranking_frame(self, k: int = 10):
        """Per query and position: the gallery id and score of the final evaluation's ranking (long form)."""
        ranking = self._evaluation().ranking
        rows = []
        for q, qid in enumerate(ranking.query_ids):
            row = ranking.indices[q, :k]
            for pos, (i, score) in enumerate(zip(row, ranking.scores[q, :k], strict=True)):
                if i >= 0:
                    rows.append({"query": qid, "position": pos + 1, "image": ranking.gallery_ids[i],
                                 "score": float(score)})
        return _pandas().DataFrame(rows)

    def texts(self):
        """Per query: every per-query text the run's steps produced (captions, descriptions, verdicts...)."""
        view = self._evaluation()
        data = {"text": [query_text(q) for q in view.split.queries], **view.texts}
        return _pandas().DataFrame(data, index=[q.id for q in view.split.queries])


class Workspace:
    """A store opened for reading: ``runs`` maps names to :class:`Run`."""

    def __init__(self, store: Store | str) -> None:
        self.store = store if isinstance(store, Store) else Store(str(store))

    @property
    def runs(self) -> Mapping[str, Run]:
        store = self.store

        class _Runs(Mapping):
            def __getitem__(self, name: str) -> Run:
                return Run(store, name)

            def __iter__(self) -> Iterator[str]:
                return iter(store.run_names())

            def __len__(self) -> int:
                return len(store.run_names())

        return _Runs()

    def run(self, name: str) -> Run:
        return Run(self.store, name)

    def runs_frame(self):
        """One row per run: pipeline, when, cold compute seconds, and its headline metrics."""
        from .ordering import headline_metrics

        rows = []
        for name in self.store.run_names():
            rec = self.store.get_run(name) or {}
            row, head = headline_metrics(rec.get("metrics"), rec.get("metric_order"))
            rows.append({"run": name, "pipeline": rec.get("pipeline"), "started": rec.get("started"),
                         "cold_seconds": rec.get("cold_seconds"), "headline": row,
                         **{k: v for k, v in head.items()}})
        return _pandas().DataFrame(rows).set_index("run") if rows else _pandas().DataFrame()

    def __repr__(self) -> str:
        return f"Workspace({self.store.location!r}, runs={len(self.store.run_names())})"


def open_store(store: Store | str = "artifacts") -> Workspace:
    """Open a store (a path or fsspec URL) for reading in a notebook."""
    return Workspace(store)
