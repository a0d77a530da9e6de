"""Store-wide work: size and counts, integrity verification, and garbage collection by reachability.

gc is safe to interrupt: it unpublishes in dependency order (records, then shards, then values, then
arrays), so whatever it leaves behind is either reachable through intact records or unreachable.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .checks import BadName, Corrupt, check_name, check_run, load_json
from .fs import MANIFEST
from .hashing import digest
from .store import CorruptionWarning, MissingContent, Store, StoreIOError, _Memo

__all__ = [
    "store_status", "verify_store", "collect_garbage", "GcRefused", "Reachable", "reachable_from_runs", "GRACE_SECONDS",
]

_AREAS = ("records", "values", "arrays", "items", "runs")
GRACE_SECONDS = 3600.0  # temporaries younger than this may belong to a live writer; gc leaves them alone
_VERIFY_MEMO_BYTES = 256 << 20
_UNREFERENCED_ARRAY_BYTES = 64 << 20  # an array no value names is read only up to this claimed size


def _area_entry(path: str) -> tuple[str, str]:
    """('arrays', 'arrays/ab/<digest>.zarr') for any file below an entry; entries are files elsewhere."""
    parts = path.split("/")
    if parts[0] == "arrays" and len(parts) >= 3:
        return "arrays", "/".join(parts[:3])
    return parts[0], path


def store_status(store: Store) -> dict[str, dict[str, int]]:
    """Entries and bytes per area of the store, and the temporaries left by writers (live or killed)."""
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
    for _path, size, _age in store.fs.temporaries():
        counts["temporaries"] += 1
        sizes["temporaries"] += size
    return {area: {"entries": counts[area], "bytes": sizes[area]} for area in (*_AREAS, "temporaries")}


class GcRefused(RuntimeError):
    """gc cannot tell what is reachable (a run, record, shard or value it reaches is corrupt); nothing removed."""


@dataclasses.dataclass
class Problem:
    path: str
    what: str


def verify_store(store: Store, *, repair: bool = False, progress=None) -> tuple[int, list[Problem]]:
    """Re-hash every record, shard, run, value and array, and check that everything a run references
    exists; return (entries checked, problems found).

    With ``repair`` corrupt entries are removed, so the next run recomputes them. Entries that could not be
    read (an I/O error) are reported as not checked and never removed; runs are never removed.
    """
    problems: list[Problem] = []
    checked = 0
    paths = [p for p, _ in store.fs.walk_files("") if p.split("/")[0] in _AREAS]
    entries = sorted({_area_entry(p)[1] for p in paths})
    memo = _Memo(budget=_VERIFY_MEMO_BYTES)
    array_refs = _array_refs(store, [e for e in entries if e.startswith("values/")])
    for entry in entries:
        area = entry.split("/")[0]
        checked += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptionWarning)
            try:
                ok, what = _check(store, area, entry, memo, array_refs)
            except StoreIOError as exc:
                problems.append(Problem(entry, f"not checked: {exc}"))
                continue
        if not ok:
            problems.append(Problem(entry, what))
            if repair and area != "runs":
                store.fs.remove(entry)
        if progress:
            progress(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptionWarning)
        reported = {p.path.rsplit("/", 1)[-1].split(".")[0] for p in problems}
        for run in store.run_names():
            found = reachable_from_runs(store, [run], strict=True)
            if found.problem_names - reported:  # not only the corrupt entries listed above
                more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
                removed = ""
                if repair and found.broken_records:  # so that rerunning recomputes what is not whole
                    for key in sorted(found.broken_records):
                        store.fs.remove(store.record_path(key))
                    removed = f"; removed {len(found.broken_records)} records whose content is not whole"
                problems.append(Problem(store.run_path(run),
                                        f"incomplete: {found.problems[0]}{more}{removed}; rerun it to restore"))
    return checked, problems


def _entry_name(entry: str, suffix: str) -> str:
    name = entry.rsplit("/", 1)[-1]
    if not name.endswith(suffix):
        raise BadName(f"{name!r} does not end in {suffix}")
    return check_name(name[: -len(suffix)])


def _check(store: Store, area: str, entry: str, memo: _Memo, array_refs: dict) -> tuple[bool, str]:
    try:
        if area == "values":
            return store.check_value(_entry_name(entry, ".json"), memo), "value does not match its content hash"
        if area == "arrays":
            return _check_array(store, _entry_name(entry, ".zarr"), array_refs)
        if area == "records":
            return store.load_record(_entry_name(entry, ".json")) is not None, "record is missing"
        if area == "items":
            _, namespace, shard = entry.split("/")
            check_name(namespace)
            return store.load_shard(namespace, check_name(shard[: -len(".json")], "shard")) is not None, "missing"
        return store.load_doc(entry, check_run) is not None, "missing"
    except (BadName, ValueError) as exc:  # Corrupt is a ValueError
        return False, f"corrupt: {exc}"


def _array_refs(store: Store, value_entries: list[str]) -> dict[str, dict]:
    """Array digest -> the reference (dtype, shape) a stored value gives it."""
    refs: dict[str, dict] = {}
    for entry in value_entries:
        try:
            doc = load_json(store._read(entry) or b"{}")
        except Corrupt:
            continue
        for ref in doc.get("arrays", []) if isinstance(doc, dict) and isinstance(doc.get("arrays"), list) else []:
            if isinstance(ref, dict) and isinstance(ref.get("digest"), str):
                refs.setdefault(ref["digest"], ref)
    return refs


def _check_array(store: Store, name: str, array_refs: dict) -> tuple[bool, str]:
    """An array against its digest, read at the shape its value names (or, for an array no value names,
    only if its metadata claims a modest size)."""
    try:
        ref = array_refs.get(name)
        if ref is None:
            import zarr

            z = zarr.open_array(store=store.fs.zarr_store(store.array_path(name)), mode="r")
            claimed = int(np.prod(z.shape, dtype=np.float64) * z.dtype.itemsize)
            if claimed > _UNREFERENCED_ARRAY_BYTES:
                return False, f"no value references it and its metadata claims {claimed} bytes; not read"
            ref = {"dtype": z.dtype.str, "shape": list(z.shape), "digest": name}
        return digest(store._get_array(ref, lazy=True)) == name, "array does not match its digest"
    except (StoreIOError, MissingContent):
        raise
    except OSError as exc:
        raise store.io_error(store.array_path(name), exc) from None
    except Exception as exc:  # noqa: BLE001 - any other failure to read is corruption
        return False, f"array unreadable ({type(exc).__name__}: {str(exc)[:200]})"


@dataclasses.dataclass
class Reachable:
    records: set[str] = dataclasses.field(default_factory=set)
    values: set[str] = dataclasses.field(default_factory=set)
    arrays: set[str] = dataclasses.field(default_factory=set)
    shards: set[str] = dataclasses.field(default_factory=set)  # "namespace/shard"
    array_refs: dict[str, dict] = dataclasses.field(default_factory=dict)  # digest -> dtype, shape
    problems: list[str] = dataclasses.field(default_factory=list)  # with strict: what is missing or corrupt
    problem_names: set[str] = dataclasses.field(default_factory=set)  # their keys, hashes or shard ids
    unreadable: list[str] = dataclasses.field(default_factory=list)  # corrupt: what they reference is unknown
    broken_records: set[str] = dataclasses.field(default_factory=set)  # readable records whose content is not whole
    _parts: dict[str, list[str]] = dataclasses.field(default_factory=dict, repr=False)  # gather value -> parts
    _broken_values: set[str] = dataclasses.field(default_factory=set, repr=False)  # missing, corrupt or no array


def reachable_from_runs(store: Store, runs: Iterable[str] | None = None, *, strict: bool = False) -> Reachable:
    """Everything the named runs (default: all) need: their records, values, arrays and item shards.

    Without ``strict`` what is missing is skipped and what is corrupt is listed in ``unreadable``. With ``strict`` every
    run, record, value, array and shard a run needs must be present and readable; what is not is listed
    in ``problems`` (pull and verify refuse incomplete runs).
    """
    found = Reachable()
    namespaces: dict[str, set[str]] = {}  # namespace -> the gather parts its shards must provide
    outputs: dict[str, tuple[str, str | None]] = {}  # record key -> (output, namespace)

    def note(name: str, message: str) -> None:
        if " is corrupt " in message:
            found.unreadable.append(message)
        if strict:
            found.problems.append(message)
            found.problem_names.add(name)

    for run in store.run_names() if runs is None else runs:
        try:
            record = store.load_run(run)
        except Corrupt as exc:
            note(run, f"run {run!r} is corrupt ({exc})")
            continue
        if record is None:
            note(run, f"run {run!r} is missing")
            continue
        keys = set(record.get("artifacts", [])) | {o["key"] for o in record.get("outputs", {}).values()}
        for key in sorted(keys):
            try:
                rec = store.load_record(key)
            except Corrupt as exc:
                note(key, f"record {key} is corrupt ({exc})")
                continue
            if rec is None:
                note(key, f"record {key} is missing")
                continue
            found.records.add(key)
            outputs[key] = (rec["output"], rec.get("namespace"))
            _mark_value(store, rec["output"], found, note)
            if rec.get("namespace"):
                namespaces.setdefault(rec["namespace"], set()).update(found._parts.get(rec["output"], []))
    unprovided: dict[str, set[str]] = {}
    for ns, parts in sorted(namespaces.items()):
        provided: set[str] = set()
        for shard in store.shard_ids(ns):
            try:
                doc = store.load_shard(ns, shard)
            except Corrupt as exc:
                note(shard, f"shard {ns}/{shard} is corrupt ({exc})")
                continue
            if doc is not None and doc["value"] in found.values:
                found.shards.add(f"{ns}/{shard}")
                provided.add(doc["value"])
        unprovided[ns] = parts - provided
        for part in sorted(unprovided[ns]):
            note(part, f"shard of {ns} holding {part} is missing")
    for key, (output, ns) in outputs.items():
        if _tree_broken(found, output) or (ns and set(found._parts.get(output, [])) & unprovided.get(ns, set())):
            found.broken_records.add(key)
    return found


def _tree_broken(found: Reachable, content: str) -> bool:
    """Whether a value or anything it is gathered from is missing, corrupt or lacks an array."""
    todo, seen = [content], set()
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        if c in found._broken_values:
            return True
        todo.extend(found._parts.get(c, []))
    return False


def _mark_value(store: Store, content: str, found: Reachable, note) -> None:
    """Mark a value, its arrays and (for a gather) its parts; iterative, each value once."""
    todo = [content]
    while todo:
        content = todo.pop()
        if content in found.values:
            continue
        found.values.add(content)
        raw = store._read(store.value_path(content))
        if raw is None:
            note(content, f"value {content} is missing")
            found._broken_values.add(content)
            continue
        try:
            doc = load_json(raw)
            refs = doc.get("arrays", [])
            parts = [check_name(p) for p in doc.get("gather", {}).get("parts", [])]
            for ref in refs:
                if "digest" in ref:
                    found.arrays.add(check_name(ref["digest"]))
                    found.array_refs.setdefault(ref["digest"], ref)
                    if not store.fs.exists(f"{store.array_path(ref['digest'])}/{MANIFEST}"):
                        note(ref["digest"], f"array {ref['digest']} of value {content} is missing")
                        found._broken_values.add(content)
            found._parts[content] = parts
            todo.extend(parts)
        except (Corrupt, BadName, AttributeError, TypeError) as exc:
            note(content, f"value {content} is corrupt ({exc})")
            found._broken_values.add(content)


def collect_garbage(store: Store, *, dry_run: bool = True, grace_seconds: float = GRACE_SECONDS) -> tuple[list[str], int]:
    """Entries no named run reaches, and temporaries older than ``grace_seconds`` (left by killed writers);
    removed unless ``dry_run``: records first, then shards, values, arrays and temporaries, so that an
    interrupted gc never leaves a record whose content is gone. If a named run, or a record, shard or value
    it reaches, is corrupt, what it references is unknown: gc refuses (:class:`GcRefused`) and removes nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptionWarning)
        keep = reachable_from_runs(store)
    if keep.unreadable:
        more = f" (and {len(keep.unreadable) - 1} more)" if len(keep.unreadable) > 1 else ""
        raise GcRefused(f"gc removed nothing: {keep.unreadable[0]}{more}, so what it references is unknown; "
                        "run `cirkit verify --repair` (and rerun what it reports) first")
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
            dead = False
        if dead:
            doomed[entry] = doomed.get(entry, 0) + size
    for path, size, age in store.fs.temporaries():
        if age >= grace_seconds:
            doomed[path] = size
    order = {"records": 0, "items": 1, "values": 2, "arrays": 3}
    ordered = sorted(doomed, key=lambda e: (order.get(e.split("/")[0], 4), e))
    if not dry_run:
        for entry in ordered:
            store.fs.remove(entry)
    return ordered, sum(doomed.values())
