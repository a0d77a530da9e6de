"""Push and pull a run between stores (any two fsspec locations: a local folder, S3, GCS, ...).

Only what the run reaches and the other side lacks is transferred. A pull lands in a staging folder first,
where every record, shard and run is checked against its checksum, every array against its digest and every
value against its content hash; only when all pass is anything published into the local store (content
first, the run record last). A tampered or truncated file fails the pull with its name, and nothing partial
is left behind. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator

from .codec import decode
from .fs import LocalFS
from .hashing import digest
from .maintenance import Reachable, reachable_from_runs
from .store import Store, assemble

__all__ = ["push_run", "pull_run", "TransferReport", "VerificationError"]


class VerificationError(ValueError):
    """Pulled content does not match its hash or checksum; nothing was published."""


@dataclasses.dataclass
class TransferReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # entries the destination already had


def _entries(store: Store, found: Reachable, run: str) -> Iterator[tuple[str, str]]:
    """(kind, entry path) in publishing order: arrays, values, shards, records, then the run."""
    for a in sorted(found.arrays):
        yield "array", store.array_path(a)
    for v in sorted(found.values):
        yield "value", store.value_path(v)
    for s in sorted(found.shards):
        ns, shard = s.split("/", 1)
        yield "shard", store.shard_path(ns, shard)
    for k in sorted(found.records):
        yield "record", store.record_path(k)
    yield "run", store.run_path(run)


def _files_of(store: Store, kind: str, entry: str) -> list[str]:
    if kind == "array":
        return [p for p, _ in store.fs.walk_files(entry)]
    return [entry] if store.fs.exists(entry) else []


def _present(store: Store, kind: str, entry: str) -> bool:
    return store.fs.exists(f"{entry}/zarr.json" if kind == "array" else entry)


def _copy(src: Store, dst: Store, kind: str, entry: str, report: TransferReport) -> None:
    for path in _files_of(src, kind, entry):
        data = src.fs.read(path)
        if data is None:
            raise FileNotFoundError(f"{src.location}/{path} vanished during the transfer")
        dst.fs.write_atomic(path, data)
        report.files += 1
        report.bytes += len(data)


def push_run(local: Store, remote: Store, run: str) -> TransferReport:
    """Copy a run's records and content to ``remote``; only what it lacks is sent, the run record last."""
    if local.get_run(run) is None:
        raise KeyError(f"no run named {run!r} in {local.location}")
    report = TransferReport()
    for kind, entry in _entries(local, reachable_from_runs(local, [run]), run):
        if kind != "run" and _present(remote, kind, entry):
            report.skipped += 1
            continue
        _copy(local, remote, kind, entry, report)
    return report


def pull_run(remote: Store, local: Store, run: str) -> TransferReport:
    """Fetch a run from ``remote`` into ``local`` through a verified staging folder."""
    if remote.get_run(run) is None:
        raise KeyError(f"no run named {run!r} in {remote.location} (or its record is corrupt)")
    found = reachable_from_runs(remote, [run])
    report = TransferReport()
    staging_dir = tempfile.mkdtemp(prefix="cirkit-pull-")
    try:
        staging = Store(LocalFS(staging_dir))
        todo = []
        for kind, entry in _entries(remote, found, run):
            if kind != "run" and _present(local, kind, entry):
                report.skipped += 1
                continue
            _copy(remote, staging, kind, entry, report)
            todo.append((kind, entry))
        for kind, entry in todo:
            _verify(staging, local, kind, entry)
        for kind, entry in todo:  # publish in order: content before the records and the run that point to it
            _copy(staging, local, kind, entry, TransferReport())
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return report


def _verify(staging: Store, local: Store, kind: str, entry: str) -> None:
    name = entry.rsplit("/", 1)[-1]
    ok = True
    try:
        if kind == "array":
            import zarr

            arr = zarr.open_array(store=staging.fs.zarr_store(entry), mode="r")[...]
            ok = digest(arr) == name[: -len(".zarr")]
        elif kind == "value":
            ok = digest(_load_value(staging, local, name[: -len(".json")])) == name[: -len(".json")]
        elif kind == "record":
            ok = staging.get_record(name[: -len(".json")]) is not None
        else:
            ok = staging._read_doc(entry) is not None
    except VerificationError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything unreadable fails verification
        raise VerificationError(f"pulled {entry} is unreadable ({type(exc).__name__}: {exc}); nothing was published") from None
    if not ok:
        raise VerificationError(f"pulled {entry} does not match its hash or checksum; nothing was published")


def _load_value(staging: Store, local: Store, content: str):
    """Decode a value from staging, taking arrays and gather parts from staging or else the local store."""
    raw = staging.fs.read(staging.value_path(content)) or local.fs.read(local.value_path(content))
    if raw is None:
        raise VerificationError(f"value {content} is missing")
    doc = json.loads(raw)
    if "gather" in doc:
        return assemble([_load_value(staging, local, p) for p in doc["gather"]["parts"]], doc["gather"]["runs"])
    arrays = []
    for ref in doc["arrays"]:
        source = staging if "inline" in ref or staging.fs.exists(f"{staging.array_path(ref['digest'])}/zarr.json") else local
        arrays.append(source._get_array(ref))
    return decode(doc["tree"], arrays)
