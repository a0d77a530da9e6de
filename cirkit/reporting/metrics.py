"""The metrics part of the report: per task, runs side by side in reading order with deltas against the
first run and the best value in bold; and the plots the metrics imply (Recall@K with chance, CIRCO
per-aspect bars, chat Hits@K over rounds)."""

from __future__ import annotations

import html
import re
from typing import Any

from ..ordering import is_chance, order_metrics, order_rows
from .plots import Series, bar_chart, line_chart

__all__ = ["metric_rows", "metrics_section", "metric_plots"]

_RECALL = re.compile(r"^R@(\d+)$")
_ROUND = re.compile(r"^(Hits@\d+) r(\d+)$")
_ASPECT = re.compile(r"^(mAP@\d+) (.+)$")


def metric_rows(record: dict) -> dict[str, dict[str, float]]:
    """A run's metrics as named rows in declared order. Flat metrics become one row ``""`` and their
    ``chance X`` metrics a row ``chance``; CIRCO's ``mAP@10 aspect`` metrics a row ``per aspect``."""
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return {}
    if all(isinstance(v, dict) for v in metrics.values()):
        return {r: metrics[r] for r in order_rows(metrics, record.get("metric_order"))}
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    rows: dict[str, dict[str, float]] = {"": {}, "per aspect": {}, "chance": {}}
    for k, v in numbers.items():
        if is_chance(k):
            rows["chance"][re.sub(r"(?i)chance\s*", "", k)] = v
        elif _ASPECT.match(k):
            rows["per aspect"][k] = v
        else:
            rows[""][k] = v
    return {k: v for k, v in rows.items() if v}


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))


def metrics_section(runs: list[tuple[str, dict]]) -> str:
    """One table per task: a row per (variant, run), a column per metric; deltas against the first run."""
    per_run = [(name, metric_rows(rec)) for name, rec in runs]
    declared: list[str] = []
    for _, rows in per_run:
        declared += [r for r in rows if r not in declared]
    tasks: dict[str, list[str]] = {}
    for row in order_rows(declared, declared):
        tasks.setdefault(row.partition(" · ")[0] if " · " in row else "", []).append(row)
    parts = []
    for task, row_names in tasks.items():
        columns = order_metrics(m for _, rows in per_run for r in row_names for m in rows.get(r, {}))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", "run", *columns])
        body = []
        for row in row_names:
            chance = is_chance(row)
            present = [(n, rows[row]) for n, rows in per_run if row in rows]
            if chance:  # chance depends on the data, not the method: one row
                present = present[:1]
            best = {c: max((v.get(c) for _, v in present if isinstance(v.get(c), (int, float))), default=None)
                    for c in columns}
            base = present[0][1] if present else {}
            for i, (name, values) in enumerate(present):
                cells = []
                for c in columns:
                    v = values.get(c)
                    text = "" if v is None else _fmt(v)
                    if v is not None and len(present) > 1 and not chance and v == best[c]:
                        text = f"<b>{text}</b>"
                    if i and isinstance(v, (int, float)) and isinstance(base.get(c), (int, float)):
                        d = v - base[c]
                        cls = "up" if d > 0 else "down" if d < 0 else "same"
                        text += f" <span class='{cls}'>({d:+.2f})</span>"
                    cells.append(f"<td>{text}</td>")
                label = html.escape(row.partition(" · ")[2] if " · " in row else row)
                run_label = "" if chance else html.escape(name)
                body.append(f"<tr class='{'chance' if chance else ''}'><td>{label}</td><td>{run_label}</td>"
                            f"{''.join(cells)}</tr>")
        parts.append(f"<h2>{html.escape(task or 'metrics')}</h2><table><tr>{head}</tr>{''.join(body)}</table>")
    return "".join(parts)


def _series_label(run: str, variant: str, runs: int, variants: int) -> str:
    if runs > 1 and variants > 1:
        return f"{run}: {variant}"
    return run if runs > 1 or not variant else variant


def metric_plots(runs: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """(caption, svg) for every plot the metrics support, one per task: Recall@K curves with the chance
    line, Hits@K over dialogue rounds, and per-aspect bars; a line (or bar) per run and variant."""
    per_run = [(name, metric_rows(rec)) for name, rec in runs]
    rows: list[str] = []
    for _, r in per_run:
        rows += [x for x in r if x not in rows]
    tasks: dict[str, list[str]] = {}
    for row in rows:
        tasks.setdefault(row.partition(" · ")[0] if " · " in row else "", []).append(row)
    plots = []
    for task, task_rows in tasks.items():
        variants = [r for r in task_rows if not is_chance(r)]
        label = lambda run, row, n=len(variants): _series_label(  # noqa: E731
            run, row.partition(" · ")[2] if " · " in row else row, len(per_run), n)
        chance_row = next((r for r in task_rows if is_chance(r)), None)
        recall = [Series(label(name, row), [(int(m[1]), v) for k, v in r.get(row, {}).items() if (m := _RECALL.match(k))])
                  for row in variants for name, r in per_run]
        recall = [s for s in recall if len(s.points) >= 2]
        if recall:
            chance = per_run[0][1].get(chance_row, {}) if chance_row else {}
            pts = [(int(m[1]), v) for k, v in chance.items() if (m := _RECALL.match(k))]
            if pts:
                recall.append(Series("chance", pts, dashed=True, colour="#777"))
            title = f"Recall@K: {task or 'all queries'}"
            plots.append((title, line_chart(recall, title=title, x_label="K (log scale)", y_label="Recall@K (%)",
                                            log_x=True, y_range=(0.0, 100.0))))
        rounds = [Series(label(name, row), [(int(m[2]), v) for k, v in r.get(row, {}).items() if (m := _ROUND.match(k))])
                  for row in variants for name, r in per_run]
        rounds = [s for s in rounds if len(s.points) >= 2]
        if rounds:
            metric = next((m[1] for row in variants for _, r in per_run for k in r.get(row, {})
                           if (m := _ROUND.match(k))), "Hits@10")
            if chance_row:
                pts = [(int(m[2]), v) for k, v in per_run[0][1].get(chance_row, {}).items() if (m := _ROUND.match(k))]
                if pts:
                    rounds.append(Series("chance", pts, dashed=True, colour="#777"))
            title = f"{metric} over dialogue rounds: {task or 'chat'}"
            plots.append((title, line_chart(rounds, title=title, x_label="dialogue round",
                                            y_label=f"{metric} (%), cumulative")))
        aspect_rows = [row for row in variants if "per aspect" in row or
                       sum(bool(_ASPECT.match(k)) for _, r in per_run for k in r.get(row, {})) >= 2]
        aspects = sorted({k for row in aspect_rows for _, r in per_run for k in r.get(row, {})
                          if "per aspect" in row or _ASPECT.match(k)})
        if aspects:
            series = [Series(label(name, row), [(i, r[row][a]) for i, a in enumerate(aspects) if a in r.get(row, {})])
                      for row in aspect_rows for name, r in per_run if row in r]
            labels = [(_ASPECT.match(a)[2] if _ASPECT.match(a) else a) for a in aspects]
            title = f"CIRCO mAP@10 per aspect: {task.replace(' mAP@10 per aspect', '') or 'all queries'}"
            plots.append((title, bar_chart(labels, series, title=title, x_label="semantic aspect",
                                           y_label="mAP@10 (%)")))
    return plots
