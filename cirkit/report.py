"""Tables and previews for the terminal."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

__all__ = ["steps_table", "metrics_table", "metrics_tables", "preview"]

_STYLE = {"hit": "green", "computed": "yellow", "miss": "red", "partial": "yellow", "pending": "magenta", "read": "cyan"}


def steps_table(steps, explanations: dict[str, list[str]], *, title: str) -> Table:
    table = Table(title=title)
    for col in ("step", "stage", "status", "items", "key", "seconds"):
        table.add_column(col, no_wrap=True)
    table.add_column("why", overflow="fold", min_width=20)
    for s in steps:
        items = "" if s.items_total is None else f"{s.items_cached}/{s.items_total}"
        style = _STYLE.get(s.status, "")
        why = "; ".join(explanations.get(s.step, []) + [f"{k}: {v}" for k, v in (s.report or {}).items()])
        table.add_row(s.step, f"{s.stage} v{s.version}", f"[{style}]{s.status}[/{style}]", items,
                      (s.key or "")[:12], f"{s.seconds:.2f}" if s.status in ("computed", "read") else "", why)
    return table


def metrics_table(metrics: Any, *, title: str, row_label: str = "task") -> Table:
    """One row per task (or one row) and one column per metric."""
    rows = metrics if metrics and all(isinstance(v, dict) for v in metrics.values()) else {"": metrics}
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    table = Table(title=title)
    if any(rows):
        table.add_column(row_label)
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        cells = [_fmt(row.get(c, "")) for c in columns]
        table.add_row(*([name] if any(rows) else []), *cells)
    return table


def metrics_tables(metrics: Any, *, title: str) -> list[Table]:
    """Rows named ``"task · variant"`` become one table per task; anything else is one table."""
    if not (isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values())
            and all(" · " in k for k in metrics)):
        return [metrics_table(metrics, title=title)]
    groups: dict[str, dict[str, dict]] = {}
    for name, row in metrics.items():
        task, _, variant = name.partition(" · ")
        groups.setdefault(task, {})[variant] = row
    return [metrics_table(rows, title=f"{title}: {task}", row_label="") for task, rows in groups.items()]


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
