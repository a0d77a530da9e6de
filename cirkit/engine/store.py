"""The two-level content-addressed store.

Layout under the root (a directory or an fsspec URL)::

    records/ab/<key>.json          key -> record (stage, version, code, config, inputs, output hash, ...)
    values/ab/<hash>.json          content hash -> value (JSON tree; arrays referenced by their digest)
    arrays/ab/<digest>.zarr/       array digest -> Zarr v3 array
    items/<namespace>/<shard>.json one computed shard of an item-mapping stage: item keys -> rows of a value
    runs/<name>.json               a named run: every artifact key it used

Content is written before the record that points to it, each file atomically. Every read is checked
(records, runs and shard files by an embedded checksum and their shape, values by re-hashing what was
decoded, arrays against the shape and dtype their value names before any data is read; an array too
large for memory is written as a stream and read through a lazy handle, verified chunk by chunk, see
``arrays.py``); anything that fails is reported with a :class:`CorruptionWarning` and treated as absent, so it gets recomputed. An I/O error
is not corruption: it raises :class:`StoreIOError` and nothing is deleted.

A store may be someone else's data: every name taken from stored content (keys, hashes, digests,
namespaces, shard ids) is checked (``checks.py``) before it becomes a path. Nothing unpickles.
"""

from __future__ import annotations

import gc
import json
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .array_files import ArrayFiles, ArrayLoader
from .checks import (
    BadName,
    Corrupt,
    MissingContent,
    check_name,
    check_names,
    check_record,
    check_run,
    check_shard,
    is_name,
    load_json,
)
from .codec import decode, encode
from .fs import MANIFEST, StoreFS, open_fs
from .hashing import digest, digest_bytes

__all__ = [
    "Store", "CorruptionWarning", "MissingContent", "ShardRef", "BadName", "StoreIOError", "check_name", "check_names",
    "gather_runs", "assemble", "shard_index",
]

class CorruptionWarning(UserWarning):
    """A stored entry failed its integrity check and will be treated as missing."""


class StoreIOError(OSError):
    """The store could not be read or written (permissions, network); not corruption, nothing was deleted."""


class ShardRef(NamedTuple):
    """Where one item's output lives: row ``row`` of shard ``shard`` in ``namespace``. A named tuple, not a
    frozen dataclass: an index of a million items builds a million of them, and a tuple is made 1.4-2x faster."""

    shard: str
    row: int


def _dumps(obj: Any, sort_keys: bool = True) -> bytes:
    return json.dumps(obj, sort_keys=sort_keys, separators=(",", ":"), allow_nan=False).encode()


def gather_runs(rows: list[tuple[int, int]]) -> list[list[int]]:
    """``rows[i] = (part, row)`` for item ``i``, run-length encoded as ``[part, first row, count]``."""
    runs: list[list[int]] = []
    for part, row in rows:
        if runs and runs[-1][0] == part and runs[-1][1] + runs[-1][2] == row:
            runs[-1][2] += 1
        else:
            runs.append([part, row, 1])
    return runs


def assemble(parts: list[Any], runs: list[list[int]]) -> Any:
    """The value :func:`gather_runs` describes: an array if every part is one, else a tuple of items."""
    pieces = [parts[p][start : start + count] for p, start, count in runs]
    if pieces and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(pieces)
    return tuple(x for piece in pieces for x in piece)


def shard_index(docs: dict[str, dict], index: dict[str, ShardRef] | None = None) -> dict[str, ShardRef]:
    """Item key -> where its output lives, from shard documents (the largest shard naming a key wins). The
    cyclic garbage collector is paused meanwhile: the index holds only strings and tuples, which cannot form
    cycles, and at a million entries its repeated passes over them took most of the time."""
    index = {} if index is None else index
    paused = gc.isenabled()
    gc.disable()
    try:  # larger shards first: an item is found in a pack (one value) rather than in one of many small shards
        for shard, doc in sorted(docs.items(), key=lambda kv: -len(kv[1]["items"])):
            for row, key in enumerate(doc["items"]):
                if key not in index:
                    index[key] = ShardRef(shard, row)
    finally:
        if paused:
            gc.enable()
    return index


def _fan(prefix: str, name: str, suffix: str) -> str:
    check_name(name)
    return f"{prefix}/{name[:2]}/{name}{suffix}"


_LOADING = object()  # marks a value being loaded, so that a gather naming itself is caught


class _Memo(dict):
    """Values loaded while loading one value (each stored file is read once); with a byte budget it is
    emptied when full, so that a pass over a whole store stays linear without holding all of it in memory."""

    def __init__(self, budget: int | None = None) -> None:
        super().__init__()
        self.budget, self.used = budget, 0

    def keep(self, content: str, value: Any, size: int) -> None:
        if self.budget is not None and self.used + size > self.budget:
            self.clear()
            self.used = 0
        self[content] = value
        self.used += size


def _nbytes(value: Any) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else 0


class Store(ArrayFiles):
    """Records, values and item shards on one filesystem root."""

    def __init__(self, location: str | StoreFS) -> None:
        self.fs = open_fs(location) if isinstance(location, str) else location
        self.location = location if isinstance(location, str) else self.fs.root

    # ----------------------------------------------------------------- reading bytes
    def _read(self, path: str) -> bytes | None:
        """A stored file's bytes (None if absent); an I/O error is a :class:`StoreIOError`, not a miss."""
        try:
            return self.fs.read(path)
        except OSError as exc:
            raise self.io_error(path, exc) from None

    def io_error(self, path: str, exc: BaseException) -> StoreIOError:
        return StoreIOError(f"cannot read {self.location}/{path}: {type(exc).__name__}: {exc}; nothing was changed")

    # ----------------------------------------------------------------- checked JSON documents
    def _write_doc(self, path: str, doc: dict) -> None:
        body = dict(doc)
        body.pop("checksum", None)
        body["checksum"] = digest_bytes(_dumps(body))
        self.fs.write_atomic(path, _dumps(body))

    def load_doc(self, path: str, check=None) -> dict | None:
        """A checked document (None if absent); raise :class:`Corrupt` saying why it cannot be trusted."""
        raw = self._read(path)
        if raw is None:
            return None
        doc = load_json(raw)
        if not isinstance(doc, dict) or "checksum" not in doc:
            raise Corrupt("no checksum")
        checksum = doc.pop("checksum")
        try:
            ok = digest_bytes(_dumps(doc)) == checksum
        except (ValueError, TypeError, RecursionError):
            ok = False
        if not ok:
            raise Corrupt("checksum mismatch")
        if check is not None:
            try:
                check(doc)
            except (BadName, AttributeError, TypeError) as exc:
                raise Corrupt(f"invalid content: {exc}") from None
        return doc

    def _read_doc(self, path: str, check=None) -> dict | None:
        try:
            return self.load_doc(path, check)
        except Corrupt as exc:
            self.warn(f"{self.location}/{path} is corrupt ({exc}); treating it as missing")
            return None

    def warn(self, message: str) -> None:
        warnings.warn(message, CorruptionWarning, stacklevel=3)

    # ----------------------------------------------------------------- records
    def record_path(self, key: str) -> str:
        return _fan("records", key, ".json")

    def put_record(self, key: str, record: dict) -> None:
        self._write_doc(self.record_path(key), {**record, "key": key})

    def load_record(self, key: str) -> dict | None:
        """The record of ``key`` (None if absent); raise :class:`Corrupt` if it cannot be trusted."""
        doc = self.load_doc(self.record_path(key), check_record)
        if doc is not None and doc.get("key") != key:
            raise Corrupt(f"it names another key ({doc.get('key')})")
        return doc

    def get_record(self, key: str) -> dict | None:
        try:
            return self.load_record(key)
        except Corrupt as exc:
            self.warn(f"record {key} in {self.location} is corrupt ({exc}); treating it as missing")
            return None

    def iter_record_keys(self) -> Iterator[str]:
        for path, _ in self.fs.walk_files("records"):
            if path.endswith(".json"):
                yield path.rsplit("/", 1)[-1][: -len(".json")]

    # ----------------------------------------------------------------- values
    def value_path(self, content: str) -> str:
        return _fan("values", content, ".json")

    def array_path(self, array_digest: str) -> str:
        return _fan("arrays", array_digest, ".zarr")

    def has_value(self, content: str) -> bool:
        return self.fs.exists(self.value_path(content))

    def put_value(self, value: Any, content: str | None = None) -> str:
        """Store ``value`` (arrays first, then its JSON tree) and return its content hash. Arrays are written
        even when the value file exists, so that a value whose arrays were lost is repaired."""
        content = content or digest(value)
        exists = self.has_value(content)
        if exists and self._arrays_present(content):
            return content
        tree, arrays = encode(value)
        refs = [self._put_array(a) for a in arrays]
        if not exists:
            self.fs.write_atomic(self.value_path(content), _dumps({"tree": tree, "arrays": refs}, sort_keys=False))
        return content

    def _arrays_present(self, content: str) -> bool:
        """Whether every array a stored value names is there (a gather's parts are checked when loaded)."""
        try:
            doc = load_json(self._read(self.value_path(content)) or b"{}")
            return all(self.fs.exists(f"{self.array_path(ref['digest'])}/{MANIFEST}")
                       for ref in doc.get("arrays", []) if "digest" in ref)
        except (Corrupt, BadName, AttributeError, TypeError, KeyError):
            return False

    def get_value(self, content: str) -> Any:
        """Load and verify a value; raise :class:`MissingContent` if absent or corrupt (with a warning; a
        corrupt value is removed so that a recompute rewrites it) and :class:`StoreIOError` on I/O errors."""
        return self._value(content, _Memo(), discard=True)

    def check_value(self, content: str, memo: _Memo | None = None) -> bool:
        """Whether a stored value decodes and matches its content hash (nothing is changed). ``memo`` shares
        loaded parts between calls (a pass over the whole store)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CorruptionWarning)
                self._value(content, _Memo() if memo is None else memo, discard=False)
            return True
        except MissingContent:
            return False

    def _value(self, content: str, memo: _Memo, discard: bool) -> Any:
        found = memo.get(content)
        if found is _LOADING:
            raise Corrupt("a gather names itself")
        if found is not None or content in memo:
            return found
        memo[content] = _LOADING
        try:
            value, size = self._decode_value(content, memo, discard)
        finally:
            memo.pop(content, None)
        memo.keep(content, value, size)
        return value

    def _decode_value(self, content: str, memo: _Memo, discard: bool) -> tuple[Any, int]:
        path = self.value_path(content)
        raw = self._read(path)
        if raw is None:
            raise MissingContent(content)
        doc = None
        try:
            doc = load_json(raw)
            if not isinstance(doc, dict):
                raise Corrupt("not a value document")
            if "gather" in doc:
                parts = [self._value(check_name(p), memo, discard) for p in doc["gather"]["parts"]]
                value = assemble(parts, doc["gather"]["runs"])
                size = sum(_nbytes(p) for p in parts) + len(raw)
            else:
                arrays = ArrayLoader(self, doc["arrays"])
                value = decode(doc["tree"], arrays)
                size = arrays.nbytes + len(raw)
            if digest(value) != content:
                raise Corrupt("content hash mismatch")
            return value, size
        except (MissingContent, StoreIOError):
            raise
        except OSError as exc:
            raise self.io_error(path, exc) from None
        except Exception as exc:  # noqa: BLE001 - any other failure to decode stored bytes means corruption
            reason = str(exc) if isinstance(exc, (Corrupt, BadName)) else f"{type(exc).__name__}: {exc}"
            self.warn(f"value {content} in {self.location} is corrupt ({reason[:300]}); recomputing")
            if discard and not _names_unknown_type(exc):
                self.discard_value(content, doc if isinstance(doc, dict) else None)
            raise MissingContent(content) from None

    def put_gather(self, parts: list[str], runs: list[list[int]], content: str) -> str:
        """Store a value assembled from rows of other values (item shards) without copying them; ``runs`` is
        :func:`gather_runs`'s encoding of where each item comes from."""
        if not self.has_value(content):
            self.fs.write_atomic(self.value_path(content), _dumps({"gather": {"parts": parts, "runs": runs}}))
        return content

    def discard_value(self, content: str, doc: dict | None = None) -> None:
        """Remove a (corrupt) value and the arrays it stores, so that a recompute can write it again."""
        refs = (doc or {}).get("arrays", [])
        for ref in refs if isinstance(refs, list) else []:
            if isinstance(ref, dict) and isinstance(ref.get("digest"), str):
                try:
                    self.fs.remove(self.array_path(ref["digest"]))
                except BadName:
                    pass
        self.fs.remove(self.value_path(content))

    # ----------------------------------------------------------------- item shards
    def shard_path(self, namespace: str, shard: str) -> str:
        return f"items/{check_name(namespace)}/{check_name(shard, 'shard')}.json"

    def put_shard(self, namespace: str, item_keys: list[str], value: Any) -> str:
        """Store one computed shard (content first, then the shard file) and return its id."""
        return self.write_shard(namespace, item_keys, value)[0]

    def write_shard(self, namespace: str, item_keys: list[str], value: Any) -> tuple[str, dict]:
        """:meth:`put_shard`, also returning the shard file's document (so the writer need not read it back)."""
        return self.index_shard(namespace, item_keys, self.put_value(value))

    def index_shard(self, namespace: str, item_keys: list[str], content: str) -> tuple[str, dict]:
        """Write the shard file saying that row i of the stored value ``content`` is item ``item_keys[i]``."""
        shard = digest([namespace, item_keys, content])[:32]
        doc = {"items": item_keys, "value": content}
        self._write_doc(self.shard_path(namespace, shard), doc)
        return shard, doc

    def load_shard(self, namespace: str, shard: str) -> dict | None:
        """A shard file (None if absent); raise :class:`Corrupt` if it cannot be trusted."""
        return self.load_doc(self.shard_path(namespace, shard), check_shard)

    def get_shard(self, namespace: str, shard: str) -> dict | None:
        return self._read_doc(self.shard_path(namespace, shard), check_shard)

    def shard_ids(self, namespace: str) -> list[str]:
        """The ids of a namespace's shard files (names that are not shard ids are ignored)."""
        names = (n[: -len(".json")] for n in self.fs.list(f"items/{check_name(namespace)}") if n.endswith(".json"))
        return [n for n in names if is_name(n, "shard")]

    def namespace_shards(self, namespace: str) -> dict[str, dict]:
        """Every readable shard file of a namespace, checked: shard id -> its document (corrupt ones warned
        about and left out)."""
        docs = {}
        for shard in self.shard_ids(namespace):
            doc = self.get_shard(namespace, shard)
            if doc is not None:
                docs[shard] = doc
        return docs

    def item_index(self, namespace: str) -> dict[str, ShardRef]:
        """Every cached item of a namespace: item key -> where its output lives."""
        return shard_index(self.namespace_shards(namespace))

    def drop_shard(self, namespace: str, shard: str) -> None:
        self.fs.remove(self.shard_path(namespace, shard))

    # ----------------------------------------------------------------- runs
    def run_path(self, name: str) -> str:
        return f"runs/{urllib.parse.quote(name, safe='')}.json"

    def put_run(self, name: str, record: dict) -> None:
        self._write_doc(self.run_path(name), {**record, "name": name})

    def load_run(self, name: str) -> dict | None:
        """A run record (None if absent); raise :class:`Corrupt` if it cannot be trusted."""
        return self.load_doc(self.run_path(name), check_run)

    def get_run(self, name: str) -> dict | None:
        return self._read_doc(self.run_path(name), check_run)

    def run_names(self) -> list[str]:
        return sorted(urllib.parse.unquote(n[: -len(".json")]) for n in self.fs.list("runs") if n.endswith(".json"))


def _names_unknown_type(exc: BaseException) -> bool:
    """A value naming a type this process has not registered is treated as corrupt (it is recomputed) but
    not deleted on read: it may be another package's value; ``cirkit verify --repair`` removes it."""
    from .codec import UnknownType

    return isinstance(exc, UnknownType)
