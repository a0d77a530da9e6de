"""A self-contained HTML page for a run: its metrics, its steps, and any PNG plots its outputs carry."""

from __future__ import annotations

import base64
import html
import os
from typing import Any

from .engine import Store

__all__ = ["run_report_html"]

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.hit{color:#2a7}.computed{color:#b70}.read{color:#27a}h2{margin-top:2em}code{background:#f6f6f6;padding:1px 4px}"""


def _table(rows: dict[str, dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
    body = "".join("<tr><td>" + html.escape(name) + "</td>" +
                   "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>" for name, row in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))


def _metric_groups(metrics: Any) -> dict[str, dict[str, dict]]:
    if isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values()):
        groups: dict[str, dict[str, dict]] = {}
        for name, row in metrics.items():
            task, _, variant = name.partition(" · ")
            groups.setdefault(task if variant else "", {})[variant or name] = row
        return groups
    return {"": {"": metrics}} if isinstance(metrics, dict) else {}


def _plots(store: Store, record: dict) -> list[tuple[str, bytes]]:
    """PNG files found in folders a run exported (e.g. a trained model's loss curve)."""
    found = []
    for name, out in record.get("outputs", {}).items():
        try:
            value = store.get_value(out["content"])
        except Exception:  # noqa: BLE001 - an output this process cannot read has no plots to show
            continue
        if isinstance(value, str) and os.path.isdir(value):
            for f in sorted(os.listdir(value)):
                if f.endswith(".png"):
                    found.append((f"{name}: {f}", open(os.path.join(value, f), "rb").read()))
    return found


def run_report_html(store: Store, run: str) -> str:
    record = store.get_run(run)
    if record is None:
        raise KeyError(f"no run named {run!r} in {store.location}")
    parts = [f"<h1>cirkit run <code>{html.escape(run)}</code></h1>",
             f"<p>pipeline <code>{html.escape(str(record.get('pipeline')))}</code>, started {html.escape(str(record.get('started')))}, "
             f"{record.get('seconds')} s, {len(record.get('artifacts', []))} artifacts</p>"]
    for task, rows in _metric_groups(record.get("metrics")).items():
        parts.append(f"<h2>{html.escape(task or 'metrics')}</h2>{_table(rows)}")
    for title, png in _plots(store, record):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    steps = {s["step"]: {"stage": s["stage"], "status": s["status"], "seconds": round(s.get("seconds") or 0, 2),
                         "key": (s.get("key") or "")[:12], "notes": "; ".join(f"{k}: {v}" for k, v in (s.get("report") or {}).items())}
             for s in record.get("steps", [])}
    parts.append(f"<h2>steps</h2>{_table(steps)}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>cirkit {html.escape(run)}</title>" \
           f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
