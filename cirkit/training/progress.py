"""Progress of a training segment: a bar on a terminal, else a line every few seconds with steps/s and loss."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np

from ..engine.progress import LineProgress, Progress, _isatty

__all__ = ["training_progress"]


class _LossLines(LineProgress):
    """Plain progress lines (steps/s, ETA) that also name the latest loss."""

    def __init__(self, label: str, total: int, stream, **kw) -> None:
        super().__init__(label, total, stream, unit="steps", **kw)
        self.base, self.loss = label, float("nan")

    def observe(self, step: int, stop: int, losses: np.ndarray) -> None:
        if len(losses):
            self.loss = float(np.mean(losses))
        self.label = f"{self.base} (loss {self.loss:.4f})"
        self.advance(len(losses))


@contextlib.contextmanager
def training_progress(label: str, total: int) -> Iterator:
    """An observer for :func:`.loop.train` (or None when progress is off)."""
    progress = Progress()
    if not progress.enabled or total <= 0:
        yield None
        return
    stream = progress.stream or sys.stderr
    if _isatty(stream):
        with progress.bar(label, total=total, unit="steps") as advance:
            yield lambda step, stop, losses: advance(len(losses))
        return
    lines = _LossLines(label, total, stream, interval=progress.interval, clock=progress.clock)
    yield lines.observe
    lines.finish()
