"""Store-wide work: size and counts, integrity verification, and garbage collection by reachability."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable

from .codec import UnknownType
from .hashing import digest
from .store import Store

__all__ = ["store_status", "verify_store", "collect_garbage", "Reachable", "reachable_from_runs"]

_AREAS = ("records", "values", "arrays", "items", "runs", "tmp")


def _area_entry(path: str) -> tuple[str, str]:
    """('arrays', 'arrays/ab/<digest>.zarr') for any file below an entry; entries are files elsewhere."""
    parts = path.split("/")
    if parts[0] == "arrays" and len(parts) >= 3:
        return "arrays", "/".join(parts[:3])
    if parts[0] == "tmp" and len(parts) >= 2:
        return "tmp", "/".join(parts[:2])
    return parts[0], path


def store_status(store: Store) -> dict[str, dict[str, int]]:
    """Entries and bytes per area of the store."""
    counts: Counter = Counter()
    sizes: Counter = Counter()
    seen: set[str] = set()
    for path, size in store.fs.walk_files(""):
        area, entry = _area_entry(path)
        if area not in _AREAS:
            continue
        sizes[area] += size
        if entry not in seen:
            seen.add(entry)
            counts[area] += 1
    return {area: {"entries": counts[area], "bytes": sizes[area]} for area in _AREAS}


@dataclasses.dataclass
class Problem:
    path: str
    what: str


def verify_store(store: Store, *, repair: bool = False, progress=None) -> tuple[int, list[Problem]]:
    """Re-hash every record, shard, run, value and array; return (entries checked, problems found).

    With ``repair`` corrupt entries are removed, so the next run recomputes them.
    """
    import warnings

    from .store import CorruptionWarning

    problems: list[Problem] = []
    checked = 0
    paths = [p for p, _ in store.fs.walk_files("") if p.split("/")[0] in ("records", "values", "items", "runs", "arrays")]
    entries = sorted({_area_entry(p)[1] for p in paths})
    for entry in entries:
        area = entry.split("/")[0]
        checked += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptionWarning)
            try:
                ok, what = _check(store, area, entry)
            except UnknownType as exc:  # not corruption: this process cannot decode it, so never delete it
                problems.append(Problem(entry, f"not checked: {exc}"))
                continue
        if not ok:
            problems.append(Problem(entry, what))
            if repair:
                store.fs.remove(entry)
        if progress:
            progress(1)
    return checked, problems


def _check(store: Store, area: str, entry: str) -> tuple[bool, str]:
    name = entry.rsplit("/", 1)[-1]
    if area == "values":
        return store.check_value(name[: -len(".json")]), "value does not match its content hash"
    if area == "arrays":
        try:
            import zarr

            arr = zarr.open_array(store=store.fs.zarr_store(entry), mode="r")[...]
            return digest(arr) == name[: -len(".zarr")], "array does not match its digest"
        except Exception as exc:  # noqa: BLE001 - any failure to read is corruption
            return False, f"array unreadable ({type(exc).__name__})"
    if area == "records":
        key = name[: -len(".json")]
        return store.get_record(key) is not None, "record checksum mismatch or unreadable"
    return store._read_doc(entry) is not None, "checksum mismatch or unreadable"


@dataclasses.dataclass
class Reachable:
    records: set[str] = dataclasses.field(default_factory=set)
    values: set[str] = dataclasses.field(default_factory=set)
    arrays: set[str] = dataclasses.field(default_factory=set)
    shards: set[str] = dataclasses.field(default_factory=set)  # "namespace/shard"


def reachable_from_runs(store: Store, runs: Iterable[str] | None = None) -> Reachable:
    """Everything the named runs (default: all) need: their records, values, arrays and item shards."""
    found = Reachable()
    namespaces: set[str] = set()
    for run in store.run_names() if runs is None else runs:
        record = store.get_run(run)
        if record is None:
            continue
        keys = set(record.get("artifacts", [])) | {o["key"] for o in record.get("outputs", {}).values()}
        for key in keys:
            rec = store.get_record(key)
            if rec is None:
                continue
            found.records.add(key)
            _mark_value(store, rec["output"], found)
            if rec.get("namespace"):
                namespaces.add(rec["namespace"])
    for ns in namespaces:
        for name in store.fs.list(f"items/{ns}"):
            shard = store.get_shard(ns, name[: -len(".json")])
            if shard is not None and shard["value"] in found.values:
                found.shards.add(f"{ns}/{name[: -len('.json')]}")
    return found


def _mark_value(store: Store, content: str, found: Reachable) -> None:
    if content in found.values:
        return
    found.values.add(content)
    raw = store.fs.read(store.value_path(content))
    if raw is None:
        return
    try:
        doc = json.loads(raw)
    except ValueError:
        return
    for ref in doc.get("arrays", []):
        if isinstance(ref, dict) and "digest" in ref:
            found.arrays.add(ref["digest"])
    for part in doc.get("gather", {}).get("parts", []):
        _mark_value(store, part, found)


def collect_garbage(store: Store, *, dry_run: bool = True) -> tuple[list[str], int]:  # works on any fsspec store
    """Entries no named run reaches (and leftover temporaries); removed unless ``dry_run``."""
    keep = reachable_from_runs(store)
    doomed: dict[str, int] = {}
    for path, size in store.fs.walk_files(""):
        area, entry = _area_entry(path)
        name = entry.rsplit("/", 1)[-1]
        if area == "records":
            dead = name[: -len(".json")] not in keep.records
        elif area == "values":
            dead = name[: -len(".json")] not in keep.values
        elif area == "arrays":
            dead = name[: -len(".zarr")] not in keep.arrays
        elif area == "items":
            ns = entry.split("/")[1]
            dead = f"{ns}/{name[: -len('.json')]}" not in keep.shards
        else:
            dead = area == "tmp"
        if dead:
            doomed[entry] = doomed.get(entry, 0) + size
    if not dry_run:
        for entry in doomed:
            store.fs.remove(entry)
    return sorted(doomed), sum(doomed.values())
