"""A shard whose items failed in part: keep what finished, then fail.

Items of some stages are independent, paid-for calls (one model request each). When a few of them fail,
the stage raises :class:`PartialShard` with the outputs it has; the engine stores those items (so a rerun
asks only for the failed ones) and then raises the original error. Nothing is stored for a failed item.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PartialShard"]


class PartialShard(Exception):
    """``done`` maps an item's position in the shard to its output; ``error`` is what the run fails with."""

    def __init__(self, done: dict[int, Any], error: BaseException) -> None:
        super().__init__(str(error))
        self.done = done
        self.error = error
