"""``cirkit report``: one self-contained HTML page comparing any number of runs (nothing is fetched at
view time): configuration differences, versions, lock digest and commit; metrics side by side with deltas
and bold bests; plots; per-query grids with thumbnails; the cold per-step cost."""

from __future__ import annotations

import html
import json
import os
from typing import Any

from .engine import Engine, Store
from .experiment.environment import lock_summary
from .experiment.runner import config_diff
from .reporting.grids import grids_section, images_needed, pick_queries
from .reporting.metrics import metric_plots, metrics_section
from .reporting.plots import Series, line_chart, svg_data_url
from .reporting.runs import RunView, open_run, step_costs
from .reporting.sweeps import sweep_svg
from .reporting.thumbnails import thumbnail_map

__all__ = ["report_html"]

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child,td:nth-child(2){text-align:left}tr.chance td{color:#777}
tr.differs td{background:#fff6d6}.up{color:#1a7f37}.down{color:#c62828}.same{color:#999}
h2{margin-top:2em;border-bottom:1px solid #ddd}code{background:#f6f6f6;padding:1px 4px}
figure{display:inline-block;margin:.5em}figcaption{font-size:12px;color:#555;max-width:520px}
.query{border:1px solid #ddd;border-radius:6px;padding:8px;margin:10px 0}.qbody{display:flex;gap:12px}
.ref{text-align:center;font-size:12px;color:#555}.runrow{margin:4px 0}.runname{font-weight:bold;font-size:13px}
img.thumb{width:72px;height:72px;object-fit:cover;margin:2px;border:3px solid transparent}
img.thumb.target{border-color:#1a7f37}.noimg{display:inline-block;width:72px;height:72px;background:#eee;
font-size:10px;margin:2px;vertical-align:top}.text{font-size:12px;color:#333;max-width:900px}
table.left td{text-align:left}details{margin:.5em 0}pre{background:#f8f8f8;padding:8px;font-size:12px;overflow:auto}"""


def _figure(caption: str, svg: str) -> str:
    if not svg:
        return ""
    return (f"<figure><img class='plot' alt='{html.escape(caption)}' src='{svg_data_url(svg)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _runs_table(views: list[RunView]) -> str:
    rows = []
    for v in views:
        r = v.record
        env = r.get("environment")
        cold = r.get("cold_seconds")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
            v.name, r.get("pipeline", "?"), os.path.basename(str(r.get("experiment", "?"))), r.get("started", "?"),
            "?" if cold is None else f"{cold:.1f}", r.get("seconds", "?"), _short_commit(r.get("commit")),
            lock_summary(env))) + "</tr>")
    head = "".join(f"<th>{c}</th>" for c in ("run", "pipeline", "experiment", "started", "cold compute (s)",
                                             "last run (s)", "cirkit commit", "environment (lock it matches)"))
    return f"<table class='left'><tr>{head}</tr>{''.join(rows)}</table>"


def _short_commit(commit: str | None) -> str:
    if not commit:
        return "unknown"
    sha, _, dirty = commit.partition("+")
    return sha[:12] + (f" +{dirty}" if dirty else "")


def _versions_table(views: list[RunView]) -> str:
    names: list[str] = []
    for v in views:
        names += [n for n in (v.record.get("versions") or {}) if n not in names]
    if not names:
        return ""
    rows = []
    for n in names:
        values = [str((v.record.get("versions") or {}).get(n, "")) for v in views]
        cls = " class='differs'" if len(set(values)) > 1 else ""
        rows.append(f"<tr{cls}><td>{html.escape(n)}</td>" + "".join(f"<td>{html.escape(x)}</td>" for x in values) + "</tr>")
    head = "".join(f"<th>{html.escape(x)}</th>" for x in ["package", *(v.name for v in views)])
    return f"<h2>versions</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def _config_section(views: list[RunView]) -> str:
    paths: list[str] = []
    for v in views[1:]:
        paths += [p for p, _, _ in config_diff(views[0].record.get("config"), v.record.get("config")) if p not in paths]
    parts = ["<h2>configuration</h2>"]
    if len(views) > 1:
        if paths:
            head = "".join(f"<th>{html.escape(x)}</th>" for x in ["field", *(v.name for v in views)])
            rows = "".join(f"<tr><td>{html.escape(p)}</td>" + "".join(
                f"<td>{html.escape(json.dumps(_get(v.record.get('config'), p)))}</td>" for v in views) + "</tr>"
                for p in paths)
            parts.append(f"<p>Fields that differ:</p><table><tr>{head}</tr>{rows}</table>")
        else:
            parts.append("<p>The runs have the same configuration.</p>")
    for v in views:
        parts.append(f"<details><summary>full configuration of {html.escape(v.name)}</summary>"
                     f"<pre>{html.escape(json.dumps(v.record.get('config'), indent=2))}</pre></details>")
    return "".join(parts)


def _get(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _training_curves(store: Store, views: list[RunView]) -> list[tuple[str, str]]:
    """Loss over steps from every ``training_log.json`` in a folder a run outputs (cirkit's CLIP)."""
    series = []
    for v in views:
        for name, out in (v.record.get("outputs") or {}).items():
            try:
                folder = store.get_value(out["content"])
            except Exception:  # noqa: BLE001 - an output this process cannot read has no curves
                continue
            log = os.path.join(folder, "training_log.json") if isinstance(folder, str) else ""
            if log and os.path.isfile(log):
                with open(log, encoding="utf-8") as f:
                    losses = json.load(f).get("losses") or []
                series.append(Series(f"{v.name} ({name})", list(enumerate(losses, start=1))))
    if not series:
        return []
    title = "training loss (symmetric InfoNCE)"
    return [(title, line_chart(series, title=title, x_label="optimiser step", y_label="loss"))]


def _sweep_plot(views: list[RunView]) -> list[tuple[str, str]]:
    """A metric against the swept value, when the runs are points of one sweep."""
    found = sweep_svg([v.record for v in views])
    return [found] if found else []


def _cost_section(store: Store, views: list[RunView]) -> str:
    costs = [step_costs(store, v.record) for v in views]
    steps: list[str] = []
    for c in costs:
        steps += [s for s in c if s not in steps]
    head = "".join(f"<th>{html.escape(x)}</th>" for x in ["step", *(f"{v.name}: seconds" for v in views),
                                                          *(f"{v.name}: items, calls, fallbacks" for v in views)])
    rows = []
    for s in steps:
        secs = [f"{c[s]['seconds']:.2f}" if s in c else "" for c in costs]
        notes = [", ".join(x for x in ([f"{c[s]['items']} items"] if "items" in c.get(s, {}) else []) +
                           [f"{k}: {val}" for k, val in (c.get(s, {}).get("report") or {}).items()]) for c in costs]
        rows.append(f"<tr><td>{html.escape(s)}</td>" + "".join(f"<td>{x}</td>" for x in secs) +
                    "".join(f"<td>{html.escape(x)}</td>" for x in notes) + "</tr>")
    total = [f"{sum(c[s]['seconds'] for s in c):.2f}" for c in costs]
    rows.append("<tr><td><b>total</b></td>" + "".join(f"<td><b>{t}</b></td>" for t in total) +
                "<td></td>" * len(views) + "</tr>")
    return ("<h2>cost of each step (cold computation)</h2><p>Seconds are those of the computation that made each "
            "output, kept when a run is repeated from the cache.</p>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>")


def report_html(store: Store, runs: list[str], *, queries: tuple[str, ...] = (), examples: int = 4, k: int = 5,
                seed: int = 0) -> str:
    """The page for ``runs`` (the first is the baseline of every delta and rank change)."""
    if not runs:
        raise KeyError("name at least one run")
    views = [open_run(store, r) for r in runs]
    plots = metric_plots([(v.name, v.record) for v in views]) + _training_curves(store, views) + _sweep_plot(views)
    grids = ""
    comparable = [v for v in views if v.split is not None and v.ranking is not None and v.split.truths]
    if comparable:
        sections = pick_queries(comparable, chosen=queries, n=examples, seed=seed)
        engine = Engine(store, progress=False)
        thumbs = thumbnail_map(engine, images_needed(comparable, sections, k=k))
        grids = grids_section(comparable, sections, thumbs, k=k)
    title = " vs ".join(runs)
    parts = [f"<h1>cirkit report: {html.escape(title)}</h1>", _runs_table(views), _config_section(views),
             _versions_table(views), metrics_section([(v.name, v.record) for v in views])]
    if plots:
        parts.append("<h2>plots</h2>" + "".join(_figure(c, s) for c, s in plots))
    parts += [grids, _cost_section(store, views)]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>cirkit {html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
