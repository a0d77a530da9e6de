"""Tables and previews for the terminal."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from typing import Any

import numpy as np
from rich.table import Table

from .ordering import order_columns, order_rows

__all__ = ["steps_table", "metrics_table", "metrics_tables", "preview", "describe_difference", "round_sig",
           "sweep_table"]

_STYLE = {"hit": "green", "computed": "yellow", "miss": "red", "partial": "yellow", "pending": "magenta", "read": "cyan"}


def steps_table(steps, explanations: dict[str, list[str]], *, title: str, cold: dict[str, dict] | None = None) -> Table:
    """One row per step; with ``cold`` (a run record's per-step cold cost) a column of the seconds each
    output cost when it was computed, so a cached rerun still shows where the time goes."""
    table = Table(title=title)
    for col in ("step", "stage", "status", "items", "key", "seconds", *(("cold seconds",) if cold is not None else ())):
        table.add_column(col, overflow="fold")  # wrap within the cell, never cut a name with an ellipsis
    table.add_column("why", overflow="fold", min_width=8)
    for s in steps:
        items = "" if s.items_total is None else f"{s.items_cached}/{s.items_total}"
        style = _STYLE.get(s.status, "")
        why = "; ".join(explanations.get(s.step, []) + [f"{k}: {v}" for k, v in (s.report or {}).items()])
        extra = () if cold is None else (f"{cold[s.step]['seconds']:.2f}" if s.step in cold else "",)
        table.add_row(s.step, f"{s.stage} v{s.version}", f"[{style}]{s.status}[/{style}]", items,
                      (s.key or "")[:12], f"{s.seconds:.2f}" if s.status in ("computed", "read") else "", *extra, why)
    return table


def metrics_table(metrics: Any, *, title: str, row_label: str = "task", declared: Iterable[str] | None = None,
                  width: int | None = None) -> Table:
    """One row per task (or one row) and one column per metric, in reading order (:mod:`cirkit.ordering`).

    A table wider than the terminal is printed transposed (one metric per row) instead of truncating headers;
    cells fold rather than end in an ellipsis."""
    rows = metrics if metrics and all(isinstance(v, dict) for v in metrics.values()) else {"": metrics or {}}
    rows = {name: rows[name] for name in order_rows(rows, declared)}
    columns = order_columns((c for row in rows.values() for c in row), declared)
    cells = {name: [_fmt(row.get(c, "")) for c in columns] for name, row in rows.items()}
    labelled = any(rows)
    if _width_of(([row_label] if labelled else []) + columns, [[n] * labelled + v for n, v in cells.items()]) > \
            (width or _terminal_width()):
        return _transposed(rows, columns, cells, title=title)
    table = Table(title=title)
    if labelled:
        table.add_column(row_label, overflow="fold")
    for c in columns:
        table.add_column(c, justify="right", overflow="fold")
    for name, values in cells.items():
        table.add_row(*([name] if labelled else []), *values)
    return table


def _transposed(rows: dict, columns: list[str], cells: dict[str, list[str]], *, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric", overflow="fold")
    for name in rows:
        table.add_column(name or "value", justify="right", overflow="fold")
    for i, c in enumerate(columns):
        table.add_row(c, *(cells[name][i] for name in rows))
    return table


def _width_of(header: list[str], body: list[list[str]]) -> int:
    """Characters a rich table with these cells needs (3 per column for padding and borders, plus 1)."""
    widths = [len(h) for h in header]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    return sum(w + 3 for w in widths) + 1


def _terminal_width() -> int:
    return shutil.get_terminal_size((160, 24)).columns


def metrics_tables(metrics: Any, *, title: str, declared: Iterable[str] | None = None) -> list[Table]:
    """Rows named ``"task · variant"`` become one table per task (tasks in declared order, chance last);
    anything else is one table."""
    if not (isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values())
            and all(" · " in k for k in metrics)):
        return [metrics_table(metrics, title=title, declared=declared)]
    groups: dict[str, dict[str, dict]] = {}
    for name in order_rows(metrics, declared):
        task, _, variant = name.partition(" · ")
        groups.setdefault(task, {})[variant] = metrics[name]
    return [metrics_table(rows, title=f"{title}: {task}", row_label="") for task, rows in groups.items()]


def sweep_table(points: list[tuple[str, dict[str, Any], dict[str, Any]]], *, title: str,
                width: int | None = None) -> Table:
    """A sweep's runs as rows labelled by their swept values only (never by long, truncated run names),
    metrics in reading order; chance columns equal in every run move to the caption."""
    keys = list(dict.fromkeys(k for _, point, _ in points for k in point))
    flat = [metrics for _, _, metrics in points]
    columns = order_columns(c for m in flat for c in m)
    constant = [c for c in columns if "chance" in c.lower() and len({repr(m.get(c)) for m in flat}) == 1]
    columns = [c for c in columns if c not in constant]
    table = Table(title=title, caption=", ".join(f"{c} {_fmt(flat[0].get(c))}" for c in constant) or None)
    for k in keys:
        table.add_column(k.rsplit(".", 1)[-1] if sum(x.rsplit(".", 1)[-1] == k.rsplit(".", 1)[-1] for x in keys) == 1
                         else k, overflow="fold")
    for c in columns:
        table.add_column(c, justify="right", overflow="fold")
    for _, point, metrics in points:
        table.add_row(*(str(point.get(k, "")) for k in keys), *(_fmt(metrics.get(c, "")) for c in columns))
    return table


def describe_difference(content: dict, tolerance: float) -> str:
    """One readable sentence for what differs between two outputs of a step (``cirkit diff``)."""
    kind = content.get("kind")
    if kind == "array" and "shapes" in content:
        a, b = content["shapes"]
        return f"array shape {tuple(a)} -> {tuple(b)}"
    if kind == "array" and "max_abs_diff" in content:
        worst = content["max_abs_diff"]
        verdict = "within" if content.get("within_tolerance") else "above"
        return f"largest elementwise difference {round_sig(worst)} ({verdict} the tolerance {tolerance:g})"
    if kind == "array" and "changed" in content:
        of = content.get("of")
        return f"{content['changed']:,} of {of:,} elements differ" if of else f"{content['changed']:,} elements differ"
    if kind in ("texts", "answers"):
        noun = "model answers" if kind == "answers" else "texts"
        return f"{content['changed']:,} of {content['of']:,} {noun} differ"
    if kind == "backend":
        return f"the backend reports a different model: {content['drift']['a']} -> {content['drift']['b']}"
    return ", ".join(f"{k}={v}" for k, v in content.items() if k not in ("examples", "kind"))


def round_sig(x: Any, digits: int = 3) -> str:
    """A float to ``digits`` significant digits (0.1259026024490595 -> 0.126, 1.2e-05 stays readable)."""
    if not isinstance(x, float):
        return str(x)
    return f"{x:.{digits}g}"


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def preview(value: Any, limit: int = 5) -> str:
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=4, threshold=limit * 8, edgeitems=3):
            return f"array {value.dtype} {value.shape}\n{value[:limit]!r}"
    if isinstance(value, (tuple, list)):
        head = "\n".join(f"  [{i}] {x!r}"[:200] for i, x in enumerate(value[:limit]))
        more = f"\n  ... {len(value) - limit} more" if len(value) > limit else ""
        return f"{type(value).__name__} of {len(value)} items\n{head}{more}"
    return repr(value)[:2000]
