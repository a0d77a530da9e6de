"""Large arrays that never sit whole in memory: written to the store as they are produced, read a few rows at a time.

*Writing.* A stage returns an :class:`ArrayStream` (the number of rows and an iterable of row blocks) where its output
holds a large array; the engine writes the blocks into a temporary Zarr folder as they come, digesting them on the way
(:class:`~.hashing.ArrayHasher`, the same digest as the whole array's), and publishes the folder under that digest
once complete, so peak memory is one block plus one chunk, and an interrupted write publishes nothing.

*Reading.* A dataclass field named in :func:`~.codec.lazy_fields` loads as a :class:`StoredArray`: a read-only handle
(``shape``, ``dtype``, ``len``, ``handle[rows]``) whose indexing reads only the chunks holding those rows. Decoded
chunks are kept up to :data:`CACHE_BYTES` (least recently used dropped), so a small table is decoded once.

*Verification* stays whole, with bounded memory. Loading a value re-hashes it (as for every value); a handle is
hashed by streaming its chunks once, which also checks the array's own digest (the name of its folder) and notes
each chunk's SHA-256. Every later read checks the chunks it decodes against those notes, so rows handed to a
consumer are the bytes that were verified, even if the file changes after loading; a mismatch raises
:class:`CorruptArray` naming the chunk file. A handle made by a write knows its chunks' digests from the blocks
it wrote. Rows are never served from a handle that has not been verified (indexing first verifies it).
Why not per-chunk digests stored beside the chunks, to skip the pass at load: nothing would tie them to the
value's content hash without reading every byte anyway (the hash covers the bytes, not the chunk digests), and
an extra file would change the array folder that ``cirkit pull`` and ``verify`` accept. The pass is sequential
and bounded (one chunk); for a training run it happens once per process (the engine keeps loaded values).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .checks import Corrupt
from .hashing import ArrayHasher, BlockArray, HashError, canonical_block, feed_array_header

__all__ = ["ArrayStream", "StoredArray", "CorruptArray", "chunk_rows", "write_stream", "map_streams"]

CHUNK_BYTES = 8 << 20  # the size of a stored array's chunks (rows of at most this many bytes, at least one row)
CACHE_BYTES = 128 << 20  # verified chunks a handle keeps (least recently used dropped): a small table stays decoded


def chunk_rows(shape: tuple[int, ...], itemsize: int) -> int:
    """Rows per stored chunk: as many as fit in :data:`CHUNK_BYTES` (one at least); the whole-array writer and the
    streamed one use this same rule, so one array has one layout whichever way it was written."""
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    return max(1, min(shape[0], CHUNK_BYTES // row_bytes))


def chunk_sum(block: np.ndarray) -> str:
    """SHA-256 of a chunk's rows in their canonical encoding (whatever byte order Zarr hands them back in)."""
    return hashlib.sha256(memoryview(canonical_block(block).reshape(-1).view(np.uint8))).hexdigest()


class CorruptArray(Corrupt):
    """A stored array's chunk does not hold the bytes that were verified (or written)."""


class ArrayStream(BlockArray):
    """An array produced block by block: ``rows`` rows in total, ``blocks`` yields consecutive row blocks of one
    dtype and trailing shape (taken from the first block). One-shot: the engine consumes it when it stores the
    output of a (whole-output, not item-mapping) stage that holds it, and puts a :class:`StoredArray` in its
    place; it cannot be hashed or stored before (:meth:`~.store.Store.spill` does that)."""

    def __init__(self, rows: int, blocks: Iterable[np.ndarray]) -> None:
        if int(rows) < 1:
            raise ValueError(f"an array stream needs at least one row, got {rows}; return an empty array instead")
        self.rows, self._blocks, self._used = int(rows), blocks, False
        _UNWRITTEN.add(self)

    def blocks(self) -> Iterator[np.ndarray]:
        if self._used:
            raise RuntimeError("this array stream was consumed already (it is written once, by the engine)")
        self._used = True
        _UNWRITTEN.discard(self)
        yield from self._blocks

    def feed(self, h) -> None:
        raise HashError("an ArrayStream is hashed once written to the store (Store.spill, which the engine calls on "
                        "a stage's output)")

    def to_numpy(self) -> np.ndarray:
        """The whole array in memory (for tests and small arrays)."""
        return np.concatenate(list(self.blocks()))

    def __repr__(self) -> str:
        return f"<ArrayStream of {self.rows} rows>"


_UNWRITTEN: weakref.WeakSet = weakref.WeakSet()  # streams not consumed yet: none, and no output needs a walk


def map_streams(value: Any, fn: Callable[[ArrayStream], Any]) -> Any:
    """``value`` with every :class:`ArrayStream` inside it (in tuples, lists, dicts, dataclasses) replaced by
    ``fn(stream)``; containers without one are returned as they are, and while no stream is waiting to be written
    (the usual case) ``value`` is returned without a walk (a million-image gallery is not traversed for nothing)."""
    return _map(value, fn) if len(_UNWRITTEN) else value


def _map(value: Any, fn: Callable[[ArrayStream], Any]) -> Any:
    if isinstance(value, ArrayStream):
        return fn(value)
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        items = [_map(v, fn) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    if isinstance(value, dict):
        items = {k: _map(v, fn) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        mapped = {k: _map(v, fn) for k, v in fields.items()}
        return value if all(mapped[k] is v for k, v in fields.items()) else dataclasses.replace(value, **mapped)
    return value


def write_stream(stream: ArrayStream, create: Callable[[tuple[int, ...], np.dtype, tuple[int, ...]], Any]
                 ) -> tuple[str, tuple[int, ...], np.dtype, list[str]]:
    """Write ``stream``'s blocks into the Zarr array that ``create(shape, dtype, chunks)`` returns (a temporary
    one: publishing is the caller's), a chunk at a time, while digesting them. Returns the array's digest (that of
    the whole array), shape, dtype and each chunk's SHA-256. Holds one block and less than one chunk besides."""
    hasher = z = None
    shape: tuple[int, ...] = ()
    rows = per_chunk = 0
    carry: list[np.ndarray] = []
    sums: list[str] = []

    def write(block: np.ndarray) -> None:
        nonlocal rows
        z[rows:rows + len(block)] = block
        sums.append(chunk_sum(block))
        rows += len(block)

    for block in stream.blocks():
        block = np.asarray(block)
        if hasher is None:
            if block.ndim < 1 or block.dtype.hasobject:
                raise HashError(f"an array stream's blocks must be arrays of rows of a fixed dtype, got {block.dtype} "
                                f"{block.shape}")
            shape = (stream.rows,) + block.shape[1:]
            hasher = ArrayHasher(block.dtype, shape)
            per_chunk = chunk_rows(shape, block.dtype.itemsize)
            z = create(shape, block.dtype, (per_chunk,) + shape[1:])
        hasher.update(block)  # checks dtype, trailing shape and the row count
        if carry:  # complete the chunk begun by earlier blocks
            need = per_chunk - sum(len(c) for c in carry)
            carry.append(block[:need].copy())  # copies: the producer may reuse its buffer for the next block
            block = block[need:]
            if sum(len(c) for c in carry) == per_chunk:
                write(np.concatenate(carry))
                carry = []
        whole = len(block) - len(block) % per_chunk
        for start in range(0, whole, per_chunk):
            write(block[start:start + per_chunk])
        if whole < len(block):
            carry.append(block[whole:].copy())
    if hasher is None:
        raise HashError(f"an array stream of {stream.rows} rows yielded no blocks")
    if carry:
        write(np.concatenate(carry))
    return hasher.hexdigest(), shape, hasher.dtype, sums


class StoredArray(BlockArray):
    """A read-only handle on an array in the store: ``shape``, ``dtype``, ``len``, ``handle[rows]`` (an int, a slice
    or integer row numbers in any order) reads only the chunks of those rows, checked against the chunk digests
    noted when it was verified or written; ``np.asarray(handle)`` reads it whole. Hashes as the array it holds."""

    def __init__(self, z: Any, digest: str, where: str, sums: list[str] | None = None) -> None:
        self._z, self.digest, self.where = z, digest, where
        self.shape, self.dtype = tuple(int(n) for n in z.shape), np.dtype(z.dtype)
        self.chunk_rows = int(z.chunks[0])
        self._sums = sums
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._cached = 0

    ndim = property(lambda self: len(self.shape))
    nbytes = property(lambda self: int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<StoredArray {self.dtype} {self.shape} at {self.where}>"

    @property
    def verified(self) -> bool:
        return self._sums is not None

    def _chunk(self, c: int) -> np.ndarray:
        """Chunk ``c``'s rows as decoded (checked against its noted digest when there is one)."""
        start = c * self.chunk_rows
        file = f"{self.where}/{self._z.metadata.encode_chunk_key((c,) + (0,) * (self.ndim - 1))}"
        try:
            block = np.ascontiguousarray(self._z[start:start + self.chunk_rows])
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a chunk that does not decode is corrupt
            raise CorruptArray(f"{file} does not decode ({type(exc).__name__}: {str(exc)[:200]})") from None
        if self._sums is not None:
            if chunk_sum(block) != self._sums[c]:
                raise CorruptArray(f"{file} does not hold the bytes verified when its array was loaded or written")
        return block

    def _chunks(self) -> Iterator[np.ndarray]:
        for c in range(-(-self.shape[0] // self.chunk_rows)):
            yield self._chunk(c)

    def feed(self, h) -> None:
        """Hash as the whole array into ``h``, one chunk at a time; a handle not yet verified is verified on the way
        (its chunks must hash to its digest) and notes each chunk's digest for later reads."""
        feed_array_header(h, self.dtype, self.shape)
        own = None if self.verified else ArrayHasher(self.dtype, self.shape)
        sums = []
        for block in self._chunks():
            if own is not None:
                own.update(block)
            block = canonical_block(block)
            if own is not None:
                sums.append(hashlib.sha256(memoryview(block.reshape(-1).view(np.uint8))).hexdigest())
            if block.nbytes:
                h.update(memoryview(block.reshape(-1).view(np.uint8)))
        if own is not None:
            if own.hexdigest() != self.digest:
                raise CorruptArray(f"{self.where}: its chunks do not hash to the array's digest")
            self._sums = sums

    def verify(self) -> None:
        """Stream through every chunk, checking the array against its digest (once)."""
        if not self.verified:
            self.feed(hashlib.sha256())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        self.verify()
        if isinstance(key, tuple) and key and key[0] is Ellipsis and len(key) == 1:
            key = slice(None)
        if isinstance(key, slice):
            rows = np.arange(self.shape[0])[key]
        elif isinstance(key, (int, np.integer)):
            n = int(key) + (self.shape[0] if int(key) < 0 else 0)
            if not 0 <= n < self.shape[0]:
                raise IndexError(f"row {key} is outside an array of {self.shape[0]} rows")
            return self[np.asarray([n])][0]
        else:
            rows = np.asarray(key)
            if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0):
                raise TypeError(f"a stored array is indexed by a row, a slice or 1-d integer rows, got {key!r}"[:200])
            rows = rows.astype(np.int64)
            rows = np.where(rows < 0, rows + self.shape[0], rows)
            if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
                raise IndexError(f"rows outside an array of {self.shape[0]} rows")
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        which = rows // self.chunk_rows
        for c in np.unique(which):
            at = which == c
            out[at] = self._kept_chunk(int(c))[rows[at] - c * self.chunk_rows]
        return out

    def _kept_chunk(self, c: int) -> np.ndarray:
        """Chunk ``c`` as read and checked, kept while the chunks kept fit in :data:`CACHE_BYTES` (a table that small
        is decoded and hashed once, not at every batch; a larger one costs one chunk read per chunk a batch names).
        Kept chunks hold the bytes that were verified; rows are copied out of them, never handed out."""
        block = self._cache.get(c)
        if block is not None:
            self._cache.move_to_end(c)
            return block
        block = self._chunk(c)
        if block.nbytes <= CACHE_BYTES:
            self._cache[c] = block
            self._cached += block.nbytes
            while self._cached > CACHE_BYTES:
                self._cached -= self._cache.popitem(last=False)[1].nbytes
        return block
