"""Progress of item-mapping stages: rich bars on a terminal; without one (a file, a pipe, CI) a plain line
every few seconds (stage, items done of total, rate, ETA), so a long cold run is never silent for minutes."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO

__all__ = ["Progress", "LineProgress", "format_duration", "progress_enabled"]

# Whether progress is shown when a Progress is made without ``enabled``: a stage that reports its own
# progress (training steps) follows the run's --quiet without seeing the engine.
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("cirkit_progress_enabled", default=True)


@contextlib.contextmanager
def progress_enabled(enabled: bool) -> Iterator[None]:
    """Within this block, ``Progress()`` without ``enabled`` shows progress iff ``enabled``."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


class Progress:
    """``enabled``: show progress at all (default: as the surrounding :func:`progress_enabled` block says).
    ``stream`` (default: stderr) decides the form: bars on a TTY,
    lines otherwise; ``interval`` is the least number of seconds between two lines (default 5, or
    ``$CIRKIT_PROGRESS_INTERVAL``)."""

    def __init__(self, enabled: bool | None = None, *, stream: IO[str] | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = _ENABLED.get() if enabled is None else enabled
        self.stream = stream
        self.interval = float(os.environ.get("CIRKIT_PROGRESS_INTERVAL", 5.0)) if interval is None else interval
        self.clock = clock

    @contextlib.contextmanager
    def bar(self, label: str, total: int, unit: str = "items") -> Iterator[Callable[[int], None]]:
        if not self.enabled or total <= 0:
            yield lambda n: None
            return
        stream = self.stream or sys.stderr
        if not _isatty(stream):
            lines = LineProgress(label, total, stream, interval=self.interval, clock=self.clock, unit=unit)
            yield lines.advance
            lines.finish()
            return
        with _rich_bar(label, total, stream, unit) as advance:
            yield advance


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """Plain progress lines: at most one per ``interval`` seconds, plus a closing line if any was printed."""

    def __init__(self, label: str, total: int, stream: IO[str], *, interval: float,
                 clock: Callable[[], float], unit: str = "items") -> None:
        self.label, self.total, self.stream, self.interval, self.clock = label, total, stream, interval, clock
        self.unit = unit
        self.done = 0
        self.start = self.last = clock()
        self.printed = 0

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval and self.done < self.total:
            self._line(now)

    def finish(self) -> None:
        if self.printed:  # a stage long enough to report gets its end reported too
            self._line(self.clock())

    def _line(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else None
        pct = 100 * self.done / self.total
        eta = "done" if self.done >= self.total else f"ETA {format_duration(remaining)}"
        self.stream.write(f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%), "
                          f"{rate:,.1f} {self.unit}/s, {format_duration(elapsed)} elapsed, {eta}\n")
        self.stream.flush()
        self.last = now
        self.printed += 1


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@contextlib.contextmanager
def _rich_bar(label: str, total: int, stream: IO[str], unit: str = "items") -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    class ItemsPerSecond(TransferSpeedColumn):
        def render(self, task):  # rich's speed column speaks bytes; ours counts items
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{speed:,.1f} {unit}/s", style="progress.data.speed")

    console = Console(file=stream)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               ItemsPerSecond(), TimeRemainingColumn())
    with RichProgress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
