"""Streaming training data: a source reads only the items a batch names, and the order is a pure function of
(seed, step), so that the batch of step i is known without replaying steps 0..i-1 (what makes resume exact)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["DataSource", "ArraySource", "GatherSource", "epoch_order", "batch_indices", "steps_per_epoch"]


@runtime_checkable
class DataSource(Protocol):
    """``len(source)`` examples; ``batch(indices)`` reads exactly those (fixed-shape arrays by field name)."""

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


class ArraySource:
    """Fields held as arrays with the examples on the first axis (e.g. ``np.memmap``s or small tables).
    ``batch`` indexes each field, so a memory-mapped field reads only the rows asked for."""

    def __init__(self, fields: Mapping[str, np.ndarray]) -> None:
        sizes = {name: len(a) for name, a in fields.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"fields of a data source must have the same length, got {sizes}")
        self.fields = dict(fields)
        self._n = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self._n

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.asarray(a[indices]) for name, a in self.fields.items()}


class GatherSource:
    """Per-example fields of which some hold row numbers into shared tables: ``gather[name] = table`` makes
    ``batch`` return ``tables[table][rows]`` under ``name``, the batch an :class:`ArraySource` over the gathered
    rows would give, without a copy per example of rows that many examples share (a frozen image's features). A table
    may be anything indexed by row numbers with a length: a stored table too large for memory is a lazy
    :class:`~cirkit.engine.StoredArray`, from which a batch reads only the chunks of its rows."""

    def __init__(self, fields: Mapping[str, np.ndarray], tables: Mapping[str, np.ndarray],
                 gather: Mapping[str, str]) -> None:
        self.source = ArraySource(fields)
        for name, table in gather.items():
            if name not in fields or table not in tables:
                raise ValueError(f"gathered field {name!r} or its table {table!r} is not given")
            rows = np.asarray(fields[name])
            if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
                raise ValueError(f"field {name!r} must hold one integer row number per example, got {rows.dtype} "
                                 f"{rows.shape}")
            if len(rows) and not (0 <= rows.min() and rows.max() < len(tables[table])):
                raise ValueError(f"field {name!r} names rows outside its table {table!r} of {len(tables[table])}")
        self.tables, self.gather = dict(tables), dict(gather)

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        out = self.source.batch(indices)
        for name, table in self.gather.items():
            out[name] = np.asarray(self.tables[table][out[name]])
        return out


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per pass (the ragged tail of each epoch's order is dropped, so every batch is full)."""
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the {n} examples of the data source")
    return n // batch_size


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of examples for one epoch: a function of (seed, epoch) only (read-only)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False
    return order


def batch_indices(seed: int, step: int, batch_size: int, n: int) -> np.ndarray:
    """The examples of micro-batch ``step`` (counting micro-batches from 0)."""
    per_epoch = steps_per_epoch(n, batch_size)
    epoch, slot = divmod(step, per_epoch)
    return epoch_order(seed, epoch, n)[slot * batch_size : (slot + 1) * batch_size]
