"""Canonical content hashing.

A value's digest depends only on the value, never on the process, machine, dict order, pickle or float
printing. Every supported type is written as a type tag followed by a length-prefixed payload into one
SHA-256 stream, so no two distinct values share an encoding.

Deliberate choices:
- ``True``, ``1`` and ``1.0`` are distinct (different tags).
- Lists and tuples are both *sequences* and hash alike: a config read from TOML (lists) and the same
  config built in Python (tuples) must share a cache key.
- Every NaN hashes alike (payload bits are noise); ``-0.0`` and ``0.0`` are distinct (they can change
  results, e.g. through ``1/x`` or ``copysign``).
- Dict digests are independent of insertion order (entries sorted by their encoded keys).
- Dataclasses hash by class name and field values; fields with ``metadata={"hash": False}`` are left out
  (for knobs that cannot change a result, such as a worker count).
- NumPy arrays hash by dtype (little-endian), shape and C-order bytes; object arrays are refused. An array
  that is not in memory (a :class:`BlockArray`: one streamed into the store, or a stored one read lazily) hashes
  alike, fed in row blocks (:class:`ArrayHasher` for one array alone), so no key or content hash depends on
  how an array was written or read.
- :class:`FileRef` and :class:`pathlib.Path` hash by the file's content (a directory by its sorted tree).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pathlib
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FileRef", "digest", "digest_bytes", "file_digest", "HashError", "ArrayHasher", "BlockArray", "canonical_block",
           "feed_array_header"]

_CANON_NAN = struct.pack(">d", float("nan"))
_CHUNK = 1 << 20


class HashError(TypeError):
    """A value contains a type that has no canonical encoding."""


@dataclasses.dataclass(frozen=True)
class FileRef:
    """A file or directory identified by its content, not its path or modification time."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))


def digest_bytes(data: bytes) -> str:
    """Hex SHA-256 of raw bytes."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, or of a directory's sorted (relative path, file digest) pairs."""
    p = pathlib.Path(path)
    if p.is_dir():
        h = hashlib.sha256(b"dir\0")
        for child in sorted(c for c in p.rglob("*") if c.is_file()):
            rel = child.relative_to(p).as_posix().encode()
            h.update(len(rel).to_bytes(8, "big") + rel + bytes.fromhex(file_digest(child)))
        return h.hexdigest()
    if not p.is_file():
        raise FileNotFoundError(f"cannot hash {p}: no such file or directory")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest(value: Any) -> str:
    """Hex SHA-256 of ``value``'s canonical encoding."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _frame(h, tag: bytes, payload: bytes) -> None:
    h.update(tag + len(payload).to_bytes(8, "big") + payload)


def _encoded(value: Any) -> bytes:
    """The full canonical encoding of ``value`` as bytes (used to sort dict entries)."""
    sink = _Sink()
    _feed(sink, value)
    return b"".join(sink.parts)


class _Sink:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, data) -> None:
        self.parts.append(bytes(data))


def _feed(h, value: Any) -> None:  # noqa: C901 - one branch per type is the clearest form
    if value is None:
        h.update(b"N")
    elif value is True:
        h.update(b"T")
    elif value is False:
        h.update(b"F")
    elif isinstance(value, int) and not isinstance(value, np.generic):
        _frame(h, b"i", str(int(value)).encode())
    elif isinstance(value, float) and not isinstance(value, np.generic):
        _frame(h, b"f", _CANON_NAN if math.isnan(value) else struct.pack(">d", value))
    elif isinstance(value, str):
        _frame(h, b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        _frame(h, b"b", bytes(value))
    elif isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        h.update(b"L" + len(value).to_bytes(8, "big"))
        for item in value:
            _feed(h, item)
    elif isinstance(value, Mapping):
        entries = sorted((_encoded(k), v) for k, v in value.items())
        h.update(b"M" + len(entries).to_bytes(8, "big"))
        for key_bytes, v in entries:
            h.update(key_bytes)
            _feed(h, v)
    elif isinstance(value, (np.ndarray, np.generic)):
        _feed_array(h, np.asarray(value))
    elif isinstance(value, BlockArray):
        value.feed(h)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, FileRef):
            _frame(h, b"P", bytes.fromhex(file_digest(value.path)))
            return
        fields = [f for f in dataclasses.fields(value) if f.metadata.get("hash", True)]
        _frame(h, b"D", type(value).__qualname__.encode())
        h.update(len(fields).to_bytes(8, "big"))
        for f in sorted(fields, key=lambda f: f.name):
            _frame(h, b"k", f.name.encode())
            _feed(h, getattr(value, f.name))
    elif isinstance(value, pathlib.PurePath):
        _frame(h, b"P", bytes.fromhex(file_digest(value)))
    elif isinstance(value, (set, frozenset)):
        entries = sorted(_encoded(v) for v in value)
        h.update(b"S" + len(entries).to_bytes(8, "big"))
        for e in entries:
            h.update(e)
    else:
        raise HashError(
            f"cannot hash a value of type {type(value).__module__}.{type(value).__qualname__}; "
            "supported: None, bool, int, float, str, bytes, list, tuple, dict, set, numpy arrays, "
            "frozen dataclasses, FileRef and pathlib.Path"
        )


def _feed_array(h, arr: np.ndarray) -> None:
    arr = canonical_block(arr)
    feed_array_header(h, arr.dtype, arr.shape)
    if arr.nbytes:
        h.update(memoryview(arr.reshape(-1).view(np.uint8)))


def canonical_block(arr: np.ndarray) -> np.ndarray:
    """``arr`` (or rows of one array) as it is hashed: little-endian, every NaN alike, C-contiguous. Each element
    is canonicalised on its own, so an array hashed in consecutive row blocks gives the bytes of the whole."""
    arr = np.asarray(arr)
    if arr.dtype.hasobject:
        raise HashError("cannot hash a numpy array of dtype object; convert it to a fixed dtype")
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.dtype.kind in "fc" and np.isnan(arr).any():
        arr = np.where(np.isnan(arr), np.asarray(np.nan, dtype=arr.dtype), arr)
    return np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes a 0-d array 1-d: keep the shape


def feed_array_header(h, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """What precedes an array's bytes in its encoding: its (little-endian) dtype, shape and byte count."""
    dtype = np.dtype(dtype)
    dtype = dtype.newbyteorder("<") if dtype.byteorder in ">=" and dtype.itemsize > 1 else dtype
    shape = tuple(int(n) for n in shape)
    _frame(h, b"A", f"{dtype.str}|{shape}".encode())
    h.update((int(np.prod(shape, dtype=np.int64)) * dtype.itemsize).to_bytes(8, "big"))


class BlockArray:
    """An array that is not held in memory (one being written, or stored), hashed exactly as the ``np.ndarray`` of
    the same dtype, shape and content: subclasses give ``shape``, ``dtype`` and :meth:`feed`, which writes
    :func:`feed_array_header` then the canonical bytes of consecutive row blocks into ``h``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def feed(self, h) -> None:
        raise NotImplementedError


class ArrayHasher:
    """The digest of one array fed in consecutive row blocks (the first axis), equal to :func:`digest` of the whole
    array; it checks that the blocks have the declared dtype and trailing shape and add up to its rows."""

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.dtype, self.shape = np.dtype(dtype), tuple(int(n) for n in shape)
        if not self.shape:
            raise HashError("a 0-d array has no rows to feed in blocks")
        self.rows = 0
        self._h = hashlib.sha256()
        feed_array_header(self._h, self.dtype, self.shape)

    def update(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.dtype != self.dtype or block.shape[1:] != self.shape[1:] or block.ndim != len(self.shape):
            raise HashError(f"a block of dtype {block.dtype} and shape {block.shape} does not belong to an array of "
                            f"dtype {self.dtype} and shape {self.shape}")
        if self.rows + len(block) > self.shape[0]:
            raise HashError(f"blocks add up to more than the {self.shape[0]} rows declared")
        self.rows += len(block)
        block = canonical_block(block)
        if block.nbytes:
            self._h.update(memoryview(block.reshape(-1).view(np.uint8)))

    def hexdigest(self) -> str:
        if self.rows != self.shape[0]:
            raise HashError(f"blocks add up to {self.rows} rows, not the {self.shape[0]} declared")
        return self._h.hexdigest()
