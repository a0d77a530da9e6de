"""Push and pull a run between stores (any two fsspec locations: a local folder, S3, GCS, ...).

Only what the run reaches and the other side lacks is transferred. A pull first checks that the remote run
is complete (every record, value, array and shard it needs is there and readable), then lands everything
in a staging folder inside the local store's ``tmp/`` (so that gc finds it if the pull is killed), where
every record, shard and run is checked against its checksum, every array against its digest at the shape
its value names and every value against its content hash; only when all pass (and, with ``expect``, the
run digest matches) is anything published into the local store: content first, the run record last.
Every name taken from the remote is checked before it becomes a path, and so is every file copied.

Integrity is not authenticity: whoever controls the remote can publish a consistent, different run. A
collaborator's :func:`run_digest` (printed by ``cirkit push`` and ``cirkit show RUN``) pins it: a digest over
the run, every record and every shard it reaches, which name the content hashes of everything else.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator

from .checks import Corrupt
from .fs import MANIFEST, LocalFS, StoreFS
from .hashing import digest
from .maintenance import Reachable, reachable_from_runs
from .store import CorruptionWarning, MissingContent, Store, _Memo

__all__ = ["push_run", "pull_run", "run_digest", "TransferReport", "VerificationError"]

_ARRAY_FILE = re.compile(r"zarr\.json|c(/[0-9]+)+")


class VerificationError(ValueError):
    """Pulled content does not match its hash or checksum, or the run is incomplete; nothing was published."""


@dataclasses.dataclass
class TransferReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # entries the destination already had
    digest: str = ""  # the run digest (see run_digest)


def run_digest(store: Store, run: str) -> str:
    """A digest of the run record and every record and shard it reaches (which name the content hashes of
    all values and arrays): what a collaborator publishes so that a pull can pin exactly this run."""
    found = _complete(store, run)
    return _digest_of(store, run, found)


def _digest_of(store: Store, run: str, found: Reachable) -> str:
    return digest({
        "run": store.load_run(run),
        "records": {k: store.load_record(k) for k in sorted(found.records)},
        "shards": {s: store.load_shard(*s.split("/")) for s in sorted(found.shards)},
    })


def _complete(store: Store, run: str) -> Reachable:
    """Everything ``run`` needs; a run that is absent, corrupt or incomplete is refused."""
    try:
        if store.load_run(run) is None:
            raise KeyError(f"no run named {run!r} in {store.location}")
    except Corrupt as exc:
        raise VerificationError(f"run {run!r} in {store.location} is corrupt or invalid ({exc}); nothing was published") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptionWarning)
        found = reachable_from_runs(store, [run], strict=True)
    if found.problems:
        more = f" (and {len(found.problems) - 3} more)" if len(found.problems) > 3 else ""
        raise VerificationError(f"run {run!r} in {store.location} is incomplete: {'; '.join(found.problems[:3])}{more}; "
                                "nothing was published")
    return found


def _entries(found: Reachable, run: str) -> Iterator[tuple[str, str]]:
    """(kind, name) in publishing order: arrays, values, shards, records, then the run."""
    for a in sorted(found.arrays):
        yield "array", a
    for v in sorted(found.values):
        yield "value", v
    for s in sorted(found.shards):
        yield "shard", s
    for k in sorted(found.records):
        yield "record", k
    yield "run", run


def _path(store: Store, kind: str, name: str) -> str:
    if kind == "array":
        return store.array_path(name)
    if kind == "value":
        return store.value_path(name)
    if kind == "shard":
        return store.shard_path(*name.split("/"))
    if kind == "record":
        return store.record_path(name)
    return store.run_path(name)


def _present(store: Store, kind: str, name: str) -> bool:
    path = _path(store, kind, name)
    return store.fs.exists(f"{path}/{MANIFEST}" if kind == "array" else path)


def _files_of(store: Store, kind: str, name: str) -> list[str]:
    """The files of an entry (an array's manifest last); an array holding anything but Zarr's own files
    is refused, so that exactly the expected files are copied."""
    entry = _path(store, kind, name)
    if kind != "array":
        return [entry]
    files = []
    for path, _ in store.fs.walk_files(entry):
        rel = path[len(entry) + 1 :]
        if not (path.startswith(entry + "/") and _ARRAY_FILE.fullmatch(rel)):
            raise VerificationError(f"{store.location}/{path} is not a file of array {name}; nothing was published")
        files.append(path)
    return sorted(files, key=lambda p: p.endswith("/" + MANIFEST))


def _copy(src: Store, dst: Store, kind: str, name: str, report: TransferReport) -> None:
    """Copy one entry; an array goes to a temporary folder of ``dst`` and is published whole."""
    entry = _path(src, kind, name)
    tmp = dst.fs.temp_dir() if kind == "array" else None
    for path in _files_of(src, kind, name):
        data = src._read(path)
        if data is None:
            raise VerificationError(f"{src.location}/{path} is missing (or vanished during the transfer); "
                                    "nothing was published")
        dst.fs.write_atomic(f"{tmp}/{path[len(entry) + 1:]}" if tmp else path, data)
        report.files += 1
        report.bytes += len(data)
    if tmp:
        dst.fs.publish_dir(tmp, entry)


def push_run(local: Store, remote: Store, run: str) -> TransferReport:
    """Copy a run's records and content to ``remote``; only what it lacks is sent, the run record last.
    The report carries the run digest a collaborator can pin with ``pull_run(..., expect=...)``."""
    found = _complete(local, run)
    report = TransferReport(digest=_digest_of(local, run, found))
    for kind, name in _entries(found, run):
        if kind != "run" and _present(remote, kind, name):
            report.skipped += 1
            continue
        _copy(local, remote, kind, name, report)
    return report


def pull_run(remote: Store, local: Store, run: str, *, expect: str | None = None) -> TransferReport:
    """Fetch a complete run from ``remote`` into ``local`` through a verified staging folder; with ``expect``
    the run digest must equal it. Nothing is published unless everything passes."""
    found = _complete(remote, run)
    report = TransferReport()
    if isinstance(local.fs, LocalFS):
        staging_dir = os.path.join(local.fs.root, local.fs.temp_dir())
    else:
        staging_dir = tempfile.mkdtemp(prefix=".tmp-cirkit-pull-")
    try:
        staging = Store(LocalFS(staging_dir))
        todo = []
        for kind, name in _entries(found, run):
            here = kind != "run" and _present(local, kind, name)
            if here and kind in ("array", "value"):  # content-addressed: the local copy is the same content
                report.skipped += 1
                continue
            _copy(remote, staging, kind, name, report)  # documents are always checked (and digested)
            report.skipped += here
            todo.append((kind, name, not here))
        view = Store(_Overlay(staging.fs, local.fs))
        memo = _Memo()
        for kind, name, _ in todo:
            _verify_entry(staging, view, kind, name, found, memo)
        report.digest = _digest_of(staging, run, found)
        if expect is not None and report.digest != expect.strip().lower():
            raise VerificationError(f"run {run!r} in {remote.location} has digest {report.digest}, not the expected "
                                    f"{expect}; nothing was published")
        for kind, name, publish in todo:  # content before the records and the run that point to it
            if publish:
                _copy(staging, local, kind, name, TransferReport())
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return report


def _verify_entry(staging: Store, view: Store, kind: str, name: str, found: Reachable, memo: _Memo) -> None:
    """Check one staged entry; values are loaded through ``view`` (staging, else the local store)."""
    path = _path(staging, kind, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptionWarning)
            if kind == "array":
                ok = digest(staging._get_array(found.array_refs[name], lazy=True)) == name
            elif kind == "value":
                view._value(name, memo, discard=False)
                ok = True
            elif kind == "record":
                ok = staging.load_record(name) is not None
            elif kind == "shard":
                ok = staging.load_shard(*name.split("/")) is not None
            else:
                ok = staging.load_run(name) is not None
    except MissingContent:
        ok = False
    except Exception as exc:  # noqa: BLE001 - anything unreadable fails verification
        raise VerificationError(f"pulled {path} is unreadable ({type(exc).__name__}: {exc}); nothing was published") from None
    if not ok:
        raise VerificationError(f"pulled {path} does not match its hash or checksum; nothing was published")


class _Overlay(StoreFS):
    """Reads from ``top`` (the staging folder), else from ``bottom`` (the local store); never writes."""

    def __init__(self, top: StoreFS, bottom: StoreFS) -> None:
        self.top, self.bottom, self.root = top, bottom, top.root

    def read(self, path: str) -> bytes | None:
        data = self.top.read(path)
        return data if data is not None else self.bottom.read(path)

    def exists(self, path: str) -> bool:
        return self.top.exists(path) or self.bottom.exists(path)

    def zarr_store(self, path: str):
        return (self.top if self.top.exists(f"{path}/{MANIFEST}") else self.bottom).zarr_store(path)
