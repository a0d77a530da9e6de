"""Small line and bar charts as standalone SVG documents (no plotting library, no network at view time).

Every chart has a title, labelled axes with tick values and a legend, so a figure read out of context
still says what it shows. The report embeds them as ``<img src="data:image/svg+xml;base64,...">``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

__all__ = ["Series", "line_chart", "bar_chart", "svg_data_url", "ticks", "COLOURS"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_W, _H = 520, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 150, 34, 48


class Series:
    """One line (or one group of bars): a label, points, and whether it is drawn dashed (e.g. chance)."""

    def __init__(self, label: str, points: Sequence[tuple[float, float]], *, dashed: bool = False,
                 colour: str | None = None) -> None:
        self.label, self.points, self.dashed, self.colour = label, list(points), dashed, colour


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2e}"


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    return [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' "
            f"font-family='sans-serif' font-size='11'>",
            f"<rect width='{_W}' height='{_H}' fill='white'/>",
            f"<text x='{_LEFT}' y='18' font-size='13' font-weight='bold'>{html.escape(title)}</text>",
            f"<text x='{(_LEFT + _W - _RIGHT) / 2}' y='{_H - 8}' text-anchor='middle'>{html.escape(x_label)}</text>",
            f"<text transform='translate(14,{(_TOP + _H - _BOTTOM) / 2}) rotate(-90)' text-anchor='middle'>"
            f"{html.escape(y_label)}</text>"]


def _legend(series: Sequence[Series]) -> list[str]:
    out = []
    for i, s in enumerate(series):
        y = _TOP + 14 * i + 6
        colour = s.colour or COLOURS[i % len(COLOURS)]
        dash = " stroke-dasharray='4 3'" if s.dashed else ""
        out.append(f"<line x1='{_W - _RIGHT + 10}' y1='{y}' x2='{_W - _RIGHT + 28}' y2='{y}' stroke='{colour}' "
                   f"stroke-width='2'{dash}/><text x='{_W - _RIGHT + 32}' y='{y + 4}'>{html.escape(s.label[:22])}</text>")
    return out


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, log_x: bool = False,
               y_range: tuple[float, float] | None = None) -> str:
    """Lines over a shared x axis (log-scaled for K), with markers where there are few points."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return ""
    fx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    xs = [fx(x) for x, _ in pts]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = y_range or (min(0.0, min(y for _, y in pts)), max(y for _, y in pts) * 1.05 or 1.0)
    px = lambda x: _LEFT + (fx(x) - x_lo) / (x_hi - x_lo) * (_W - _LEFT - _RIGHT)  # noqa: E731
    py = lambda y: _H - _BOTTOM - (y - y_lo) / ((y_hi - y_lo) or 1.0) * (_H - _TOP - _BOTTOM)  # noqa: E731
    out = _frame(title, x_label, y_label)
    out.append(f"<rect x='{_LEFT}' y='{_TOP}' width='{_W - _LEFT - _RIGHT}' height='{_H - _TOP - _BOTTOM}' "
               f"fill='none' stroke='#888'/>")
    for t in ticks(y_lo, y_hi):
        out.append(f"<line x1='{_LEFT - 4}' y1='{py(t):.1f}' x2='{_W - _RIGHT}' y2='{py(t):.1f}' stroke='#eee'/>"
                   f"<text x='{_LEFT - 6}' y='{py(t) + 4:.1f}' text-anchor='end'>{_num(t)}</text>")
    x_values = sorted({x for x, _ in pts})
    x_ticks = x_values if len(x_values) <= 10 else [x_values[round(i * (len(x_values) - 1) / 5)] for i in range(6)]
    for t in x_ticks:
        out.append(f"<text x='{px(t):.1f}' y='{_H - _BOTTOM + 16}' text-anchor='middle'>{_num(t)}</text>")
    for i, s in enumerate(series):
        colour = s.colour or COLOURS[i % len(COLOURS)]
        dash = " stroke-dasharray='4 3'" if s.dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(s.points))
        out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='2'{dash}/>")
        if len(s.points) <= 12:
            out += [f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='3' fill='{colour}'/>" for x, y in s.points]
    out += _legend(series)
    out.append("</svg>")
    return "".join(out)


def bar_chart(groups: Sequence[str], series: Sequence[Series], *, title: str, x_label: str, y_label: str) -> str:
    """Grouped bars: one group per label in ``groups``, one bar per series (its points are (group index, y))."""
    if not groups or not series:
        return ""
    y_hi = max((y for s in series for _, y in s.points), default=1.0) * 1.1 or 1.0
    inner_w, inner_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = inner_w / len(groups)
    bar = slot * 0.8 / len(series)
    out = _frame(title, x_label, y_label)
    out.append(f"<rect x='{_LEFT}' y='{_TOP}' width='{inner_w}' height='{inner_h}' fill='none' stroke='#888'/>")
    for t in ticks(0.0, y_hi):
        y = _H - _BOTTOM - t / y_hi * inner_h
        out.append(f"<line x1='{_LEFT - 4}' y1='{y:.1f}' x2='{_W - _RIGHT}' y2='{y:.1f}' stroke='#eee'/>"
                   f"<text x='{_LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{_num(t)}</text>")
    for g, label in enumerate(groups):
        out.append(f"<text x='{_LEFT + slot * (g + 0.5):.1f}' y='{_H - _BOTTOM + 16}' text-anchor='middle'>"
                   f"{html.escape(label[:14])}</text>")
    for i, s in enumerate(series):
        colour = s.colour or COLOURS[i % len(COLOURS)]
        for g, y in s.points:
            h = y / y_hi * inner_h
            x = _LEFT + slot * g + slot * 0.1 + bar * i
            out.append(f"<rect x='{x:.1f}' y='{_H - _BOTTOM - h:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                       f"fill='{colour}'><title>{html.escape(s.label)}: {y:.2f}</title></rect>")
    out += _legend(series)
    out.append("</svg>")
    return "".join(out)


def svg_data_url(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
