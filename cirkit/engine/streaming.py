"""Streaming item stages: one call over every missing item, outputs published in shards as they arrive.

A stage whose items are independent calls to something that works best with many calls outstanding (a model
server with continuous batching) should not be cut into shards that each wait for their slowest item: the
server idles at every shard boundary. A streaming stage (``@stage(over=..., stream=True)``) is called once
with every missing item and yields ``(position, output)`` pairs in whatever order they finish; the engine
writes a shard every ``shard_size`` outputs and, when the stage fails or is interrupted (Ctrl-C included),
writes what has arrived before the error goes on, so a rerun computes only what never came back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["publish_stream", "StreamOutputError"]


class StreamOutputError(ValueError):
    """A streaming stage yielded a position that is out of range or repeated, or left items without output."""


def publish_stream(
    outputs: Any, keys: list[str], shard_size: int, put_shard: Callable[[list[str], tuple], Any],
    advance: Callable[[int], None], name: str,
) -> None:
    """Drain ``outputs`` (an iterator of (position, output) for the items whose keys are ``keys``), calling
    ``put_shard(item_keys, values)`` for every ``shard_size`` arrivals and once more for the rest, also when
    the iterator raises. Raises :class:`StreamOutputError` if a position is out of range, repeated or never produced."""
    got_keys: list[str] = []
    got_values: list[Any] = []
    seen: set[int] = set()

    def flush() -> None:
        if got_keys:
            put_shard(list(got_keys), tuple(got_values))
            got_keys.clear()
            got_values.clear()

    iterator = iter(outputs)
    try:
        for position, value in iterator:
            if not (isinstance(position, int) and 0 <= position < len(keys)) or position in seen:
                raise StreamOutputError(
                    f"stage {name} yielded position {position!r}: not a new item of its {len(keys)}")
            seen.add(position)
            got_keys.append(keys[position])
            got_values.append(value)
            advance(1)
            if len(got_keys) >= shard_size:
                flush()
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # a generator's own cleanup (cancel what is still queued) runs now, not at garbage collection
        flush()
    if len(seen) != len(keys):
        raise StreamOutputError(f"stage {name} yielded {len(seen)} outputs for {len(keys)} items")
