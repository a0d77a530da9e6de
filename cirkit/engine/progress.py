"""Progress bars for item-mapping stages (items/s and ETA), silent when disabled or not on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["Progress"]


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @contextlib.contextmanager
    def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.enabled or total <= 0:
            yield lambda n: None
            return
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
                return Text("?" if speed is None else f"{speed:,.1f} items/s", style="progress.data.speed")

        console = Console(file=sys.stderr)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   ItemsPerSecond(), TimeRemainingColumn())
        with RichProgress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)
