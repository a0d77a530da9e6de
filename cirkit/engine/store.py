"""The two-level content-addressed store.

Layout under the root (a directory or an fsspec URL)::

    records/ab/<key>.json          key -> record (stage, version, code, config, inputs, output hash, ...)
    values/ab/<hash>.json          content hash -> value (JSON tree; arrays referenced by their digest)
    arrays/ab/<digest>.zarr/       array digest -> Zarr v3 array
    items/<namespace>/<shard>.json one computed shard of an item-mapping stage: item keys -> rows of a value
    runs/<name>.json               a named run: every artifact key it used

Content is written before the record that points to it, each file atomically. Every read is checked
(records and shard files by an embedded checksum, values by re-hashing what was decoded); anything that
fails is reported with a :class:`CorruptionWarning` and treated as absent, so it gets recomputed.
Nothing here unpickles.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codec import UnknownType, decode, encode
from .fs import StoreFS, open_fs
from .hashing import digest, digest_bytes

__all__ = ["Store", "CorruptionWarning", "MissingContent", "ShardRef", "gather_runs", "assemble"]

_INLINE_ARRAY_BYTES = 1024
_CHUNK_BYTES = 8 << 20


class CorruptionWarning(UserWarning):
    """A stored entry failed its integrity check and will be treated as missing."""


class MissingContent(KeyError):
    """A content hash is not in the store (or was corrupt)."""


@dataclass(frozen=True)
class ShardRef:
    """Where one item's output lives: row ``row`` of shard ``shard`` in ``namespace``."""

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


def _fan(prefix: str, name: str, suffix: str) -> str:
    return f"{prefix}/{name[:2]}/{name}{suffix}"


class Store:
    """Records, values and item shards on one filesystem root."""

    def __init__(self, location: str | StoreFS) -> None:
        self.fs = open_fs(location) if isinstance(location, str) else location
        self.location = location if isinstance(location, str) else self.fs.root

    # ----------------------------------------------------------------- checked JSON documents
    def _write_doc(self, path: str, doc: dict) -> None:
        body = dict(doc)
        body.pop("checksum", None)
        body["checksum"] = digest_bytes(_dumps(body))
        self.fs.write_atomic(path, _dumps(body))

    def _read_doc(self, path: str) -> dict | None:
        raw = self.fs.read(path)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            checksum = doc.pop("checksum")
            ok = digest_bytes(_dumps(doc)) == checksum
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            self.warn(f"{self.location}/{path} is corrupt (checksum mismatch or unreadable); treating it as missing")
            return None
        return doc

    def warn(self, message: str) -> None:
        warnings.warn(message, CorruptionWarning, stacklevel=3)

    # ----------------------------------------------------------------- records
    def record_path(self, key: str) -> str:
        return _fan("records", key, ".json")

    def put_record(self, key: str, record: dict) -> None:
        self._write_doc(self.record_path(key), {**record, "key": key})

    def get_record(self, key: str) -> dict | None:
        doc = self._read_doc(self.record_path(key))
        if doc is not None and doc.get("key") != key:
            self.warn(f"record {key} names another key ({doc.get('key')}); treating it as missing")
            return None
        return doc

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
        """Store ``value`` (arrays first, then its JSON tree) and return its content hash."""
        content = content or digest(value)
        if self.has_value(content):
            return content
        tree, arrays = encode(value)
        refs = [self._put_array(a) for a in arrays]
        self.fs.write_atomic(self.value_path(content), _dumps({"tree": tree, "arrays": refs}, sort_keys=False))
        return content

    def get_value(self, content: str) -> Any:
        """Load and verify a value; raise :class:`MissingContent` if absent or corrupt (with a warning)."""
        value, ok, doc = self._load_value(content, self.get_value)
        if not ok:
            self.warn(f"value {content} in {self.location} is corrupt (content hash mismatch); recomputing")
            self.discard_value(content, doc)
            raise MissingContent(content)
        return value

    def check_value(self, content: str) -> bool:
        """Whether a stored value decodes and matches its content hash (nothing is changed)."""
        try:
            return self._load_value(content, self._checked)[1]
        except MissingContent:
            return False

    def _checked(self, content: str) -> Any:
        value, ok, _ = self._load_value(content, self._checked)
        if not ok:
            raise MissingContent(content)
        return value

    def _load_value(self, content: str, load_part) -> tuple[Any, bool, dict | None]:
        raw = self.fs.read(self.value_path(content))
        if raw is None:
            raise MissingContent(content)
        doc = None
        try:
            doc = json.loads(raw)
            if "gather" in doc:
                value = self._gather(doc["gather"], load_part)
            else:
                value = decode(doc["tree"], [self._get_array(ref) for ref in doc["arrays"]])
            return value, digest(value) == content, doc
        except (MissingContent, UnknownType):
            raise
        except Exception:  # any other failure to decode stored bytes means corruption
            return None, False, doc if isinstance(doc, dict) else None

    def put_gather(self, parts: list[str], runs: list[list[int]], content: str) -> str:
        """Store a value assembled from rows of other values (item shards) without copying them; ``runs`` is
        :func:`gather_runs`'s encoding of where each item comes from."""
        if not self.has_value(content):
            self.fs.write_atomic(self.value_path(content), _dumps({"gather": {"parts": parts, "runs": runs}}))
        return content

    def _gather(self, spec: dict, load_part) -> Any:
        return assemble([load_part(p) for p in spec["parts"]], spec["runs"])

    def discard_value(self, content: str, doc: dict | None = None) -> None:
        """Remove a (corrupt) value and the arrays it stores, so that a recompute can write it again."""
        for ref in (doc or {}).get("arrays", []):
            if isinstance(ref, dict) and "digest" in ref:
                self.fs.remove(self.array_path(ref["digest"]))
        self.fs.remove(self.value_path(content))

    def _put_array(self, arr: np.ndarray) -> dict:
        arr = np.ascontiguousarray(arr)
        ref = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
        if arr.nbytes <= _INLINE_ARRAY_BYTES or arr.ndim == 0:
            return {**ref, "inline": base64.b64encode(arr.tobytes()).decode()}
        ref["digest"] = array_digest = digest(arr)
        path = self.array_path(array_digest)
        if self.fs.exists(f"{path}/zarr.json"):
            return ref
        import zarr

        row_bytes = max(1, arr.nbytes // max(1, arr.shape[0]))
        chunks = (max(1, min(arr.shape[0], _CHUNK_BYTES // row_bytes)),) + tuple(arr.shape[1:])
        tmp = self.fs.temp_dir()
        z = zarr.create_array(store=self.fs.zarr_store(tmp), shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        z[...] = arr
        self.fs.publish_dir(tmp, path)
        return ref

    def _get_array(self, ref: dict) -> np.ndarray:
        dtype = np.dtype(ref["dtype"])
        shape = tuple(ref["shape"])
        if "inline" in ref:
            return np.frombuffer(base64.b64decode(ref["inline"]), dtype=dtype).reshape(shape).copy()
        import zarr

        path = self.array_path(ref["digest"])
        if not self.fs.exists(f"{path}/zarr.json"):
            raise MissingContent(ref["digest"])
        arr = zarr.open_array(store=self.fs.zarr_store(path), mode="r")[...]
        if arr.dtype != dtype or arr.shape != shape:
            raise ValueError(f"array {ref['digest']} has {arr.dtype}{arr.shape}, record says {dtype}{shape}")
        return arr

    # ----------------------------------------------------------------- item shards
    def shard_path(self, namespace: str, shard: str) -> str:
        return f"items/{namespace}/{shard}.json"

    def put_shard(self, namespace: str, item_keys: list[str], value: Any) -> str:
        """Store one computed shard (content first, then the shard file) and return its id."""
        content = self.put_value(value)
        shard = digest([namespace, item_keys, content])[:32]
        self._write_doc(self.shard_path(namespace, shard), {"items": item_keys, "value": content})
        return shard

    def get_shard(self, namespace: str, shard: str) -> dict | None:
        return self._read_doc(self.shard_path(namespace, shard))

    def item_index(self, namespace: str) -> dict[str, ShardRef]:
        """Every cached item of a namespace: item key -> where its output lives."""
        index: dict[str, ShardRef] = {}
        for name in self.fs.list(f"items/{namespace}"):
            if not name.endswith(".json"):
                continue
            shard = name[: -len(".json")]
            doc = self.get_shard(namespace, shard)
            if doc is None:
                continue
            for row, key in enumerate(doc["items"]):
                index.setdefault(key, ShardRef(shard, row))
        return index

    def drop_shard(self, namespace: str, shard: str) -> None:
        self.fs.remove(self.shard_path(namespace, shard))

    # ----------------------------------------------------------------- runs
    def run_path(self, name: str) -> str:
        return f"runs/{urllib.parse.quote(name, safe='')}.json"

    def put_run(self, name: str, record: dict) -> None:
        self._write_doc(self.run_path(name), {**record, "name": name})

    def get_run(self, name: str) -> dict | None:
        return self._read_doc(self.run_path(name))

    def run_names(self) -> list[str]:
        return sorted(urllib.parse.unquote(n[: -len(".json")]) for n in self.fs.list("runs") if n.endswith(".json"))
