"""A metric against a swept value (the tau sweep, the oracle-noise sweep): one line per combination of the
other swept keys, as SVG for the report and as PNG (Pillow) for papers."""

from __future__ import annotations

import io
import json
from typing import Any

from ..ordering import headline_metrics
from .plots import COLOURS, Series, line_chart, ticks

__all__ = ["sweep_series", "sweep_svg", "sweep_png", "newest_per_point"]


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def newest_per_point(records: list[dict]) -> list[dict]:
    """One record per sweep point, the most recently started: a point rerun after a change of configuration or of
    its outputs' keys is kept as ``NAME~2`` beside the old one (runner.free_run_name), and a plot must not mix
    the two."""
    newest: dict[str, dict] = {}
    for rec in records:
        point = json.dumps(rec.get("sweep_point") or {}, sort_keys=True, default=str)
        kept = newest.get(point)
        if kept is None or (str(rec.get("started", "")), str(rec.get("name", ""))) > (
                str(kept.get("started", "")), str(kept.get("name", ""))):
            newest[point] = rec
    kept_ids = {id(rec) for rec in newest.values()}
    return [rec for rec in records if id(rec) in kept_ids]


def sweep_series(records: list[dict], metric: str | None = None) -> tuple[str, str, list[Series]] | None:
    """(swept key, metric, one series per combination of the other keys) from run records of a sweep; the
    x key is the first swept key whose values are all numbers. None when the runs are not such a sweep."""
    records = newest_per_point(records)
    points = [dict(r.get("sweep_point") or {}) for r in records]
    keys = list(dict.fromkeys(k for p in points for k in p))
    x_key = next((k for k in keys if all(_numeric(p.get(k)) for p in points)), None)
    if len(records) < 2 or x_key is None:
        return None
    lines: dict[str, list[tuple[float, float]]] = {}
    chosen = metric
    for rec, point in zip(records, points, strict=True):
        row, head = headline_metrics(rec.get("metrics"), rec.get("metric_order"), limit=10)
        chosen = chosen or next(iter(head), None)
        metrics = rec.get("metrics") or {}
        values = metrics.get(row, {}) if row else metrics
        if chosen is None or not _numeric(values.get(chosen)):
            continue
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={point[k]}" for k in keys if k != x_key and k in point) or chosen
        lines.setdefault(label, []).append((float(point[x_key]), float(values[chosen])))
    if not lines or chosen is None:
        return None
    return x_key, chosen, [Series(label, sorted(pts)) for label, pts in lines.items()]


def sweep_svg(records: list[dict], metric: str | None = None) -> tuple[str, str] | None:
    found = sweep_series(records, metric)
    if found is None:
        return None
    key, chosen, series = found
    title = f"{chosen} against {key}"
    return title, line_chart(series, title=title, x_label=key, y_label=f"{chosen} (%)")


def sweep_png(records: list[dict], metric: str | None = None, width: int = 640, height: int = 400) -> bytes | None:
    """The same plot as a PNG: axes with tick values and labels, a line and markers per series, a legend."""
    from PIL import Image, ImageDraw, ImageFont

    found = sweep_series(records, metric)
    if found is None:
        return None
    key, chosen, series = found
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.font = ImageFont.load_default(size=13)
    left, right, top, bottom = 70, width - 230, 40, height - 60
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_lo, x_hi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_lo, y_hi = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
    px = lambda x: left + (x - x_lo) / (x_hi - x_lo) * (right - left)  # noqa: E731
    py = lambda y: bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)  # noqa: E731
    draw.text((left, 12), f"{chosen} against {key}", fill="black")
    for y in ticks(y_lo, y_hi):
        draw.line((left - 4, py(y), right, py(y)), fill=(235, 235, 235))
        draw.line((left - 4, py(y), left, py(y)), fill="black")
        draw.text((left - 8, py(y)), f"{y:g}", fill="black", anchor="rm")
    draw.rectangle((left, top, right, bottom), outline="black")
    for x in sorted(set(xs)):
        draw.line((px(x), bottom, px(x), bottom + 4), fill="black")
        draw.text((px(x), bottom + 8), f"{x:g}", fill="black", anchor="mt")
    draw.text(((left + right) / 2, height - 20), key, fill="black", anchor="mm")
    draw.text((8, top - 24), f"{chosen} (%)", fill="black")
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(px(x), py(y)) for x, y in s.points]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.line((right + 12, top + 8 + 16 * i, right + 30, top + 8 + 16 * i), fill=colour, width=2)
        draw.text((right + 34, top + 8 + 16 * i), s.label[:32], fill="black", anchor="lm")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
