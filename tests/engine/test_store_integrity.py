"""Integrity that is complete and never destroys data on a transient error: missing arrays, interrupted gc,
I/O errors, object-store publishing, incomplete pulls, leftovers, pinned run digests."""

import json
import os
import pathlib
import time

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner
from fsspec.implementations.memory import MemoryFileSystem

from cirkit.cli import main
from cirkit.engine import MissingContent, Store
from cirkit.engine.maintenance import collect_garbage, store_status, verify_store
from cirkit.engine.sharing import VerificationError, pull_run

EXP = 'pipeline = "toy_pipeline:toy"\n[items]\nn = 12\n[embed]\ndim = 300\n'


def run_toy(tmp_path, store, name="toy", *sets):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    args = ["run", str(exp), "--store", str(store), "--quiet", "--name", name]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def checked(doc: dict) -> bytes:
    """A document with a valid checksum, as whoever controls a remote can write it."""
    from cirkit.engine.hashing import digest_bytes

    body = {k: v for k, v in doc.items() if k != "checksum"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({**body, "checksum": digest_bytes(raw)}, sort_keys=True, separators=(",", ":")).encode()


def metrics(store, run="toy"):
    return json.loads((pathlib.Path(store) / "runs" / f"{run}.json").read_text())["metrics"]


def test_a_missing_array_under_an_intact_value_is_recomputed(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    before = metrics(root)
    import shutil

    shutil.rmtree(root / "arrays")  # e.g. an interrupted gc of an older version, which removed arrays first
    out = run_toy(tmp_path, root, "offset", "total.offset=1.0")  # loads the embeddings again
    assert "computed" in out
    assert metrics(root, "offset") == {"sum": pytest.approx(before["sum"] + 1.0), "n": 12}
    assert verify_store(Store(str(root)))[1] == []


class Interrupted(BaseException):
    """Stands in for a kill -9 in the middle of gc."""


def test_gc_interrupted_at_any_point_leaves_every_record_loadable(tmp_path):
    import shutil

    pristine = tmp_path / "pristine"
    run_toy(tmp_path, pristine, "keep")
    run_toy(tmp_path, pristine, "drop", "embed.dim=299", "items.n=13")
    (pristine / "runs" / "drop.json").unlink()
    total = len(collect_garbage(Store(str(pristine)), dry_run=True)[0])
    assert total > 5
    for stop_after in range(total):
        root = tmp_path / f"gc{stop_after}"
        shutil.copytree(pristine, root)
        store = Store(str(root))
        done = []
        real_remove = store.fs.remove

        def remove(path, real_remove=real_remove, done=done, stop_after=stop_after):
            if len(done) == stop_after:
                raise Interrupted
            done.append(path)
            real_remove(path)

        store.fs.remove = remove
        with pytest.raises(Interrupted):
            collect_garbage(store, dry_run=False)
        store = Store(str(root))
        for key in store.iter_record_keys():
            try:
                store.get_value(store.get_record(key)["output"])
            except MissingContent:
                pytest.fail(f"gc stopped after {stop_after} removals left record {key[:12]} without its content")
        shutil.rmtree(root)
    collect_garbage(Store(str(pristine)), dry_run=False)
    assert "computed" not in run_toy(tmp_path, pristine, "keep").split("results")[0]


def test_an_io_error_is_not_corruption_and_deletes_nothing(tmp_path):
    """Root ignores chmod 000, so the unreadable file is simulated: the store's fs raises PermissionError."""
    from cirkit.engine.store import StoreIOError

    store = Store(str(tmp_path))
    content = store.put_value({"emb": np.arange(5000, dtype=np.float32)})
    real_read = store.fs.read

    def read(path):
        if path.startswith("values/"):
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    store.fs.read = read
    with pytest.raises(StoreIOError, match="Permission denied.*nothing was changed"):
        store.get_value(content)
    store.fs.read = real_read
    assert store.has_value(content)


def test_an_io_error_reading_an_array_deletes_nothing(tmp_path, monkeypatch):
    """Simulated as above: zarr's local store raises an OSError for a chunk (as a network error on S3 would)."""
    from zarr.storage import LocalStore

    from cirkit.engine.store import StoreIOError

    store = Store(str(tmp_path))
    content = store.put_value(np.arange(5000, dtype=np.float32))
    real_get = LocalStore.get

    async def get(self, key, *args, **kwargs):
        if key.startswith("c"):
            raise ConnectionError("connection reset")
        return await real_get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", get)
    with pytest.raises(StoreIOError, match="connection reset"):
        store.get_value(content)
    checked, problems = verify_store(store, repair=True)
    assert problems and all("not checked" in p.what for p in problems)
    monkeypatch.setattr(LocalStore, "get", real_get)
    assert np.array_equal(store.get_value(content), np.arange(5000, dtype=np.float32))


class UnorderedMemoryFS(MemoryFileSystem):
    """An object store gives no order for a recursive copy; this one copies in reverse name order."""

    protocol = "unorderedmem"
    store: dict = {}
    pseudo_dirs = [""]
    visible_too_early: list = []

    def cp_file(self, path1, path2, **kwargs):
        super().cp_file(path1, path2, **kwargs)
        self._check(path2)

    def pipe_file(self, path, value, **kwargs):
        super().pipe_file(path, value, **kwargs)
        self._check(path)

    def expand_path(self, path, recursive=False, maxdepth=None, **kwargs):
        return sorted(super().expand_path(path, recursive=recursive, maxdepth=maxdepth, **kwargs), reverse=True)

    def _check(self, path):
        if "/arrays/" in path and path.endswith("/zarr.json") and "/tmp/" not in path:
            tmp_chunks = [p for p in self.store if "/tmp/" in p and "/c/" in p]
            if tmp_chunks:
                self.visible_too_early.append(path)


def test_publishing_an_array_on_an_object_store_is_never_half_visible(tmp_path):
    fsspec.register_implementation("unorderedmem", UnorderedMemoryFS, clobber=True)
    store = Store("unorderedmem://bucket/store")
    value = np.arange(3_000_000, dtype=np.float32)  # several chunks
    content = store.put_value(value)
    assert UnorderedMemoryFS.visible_too_early == [], "zarr.json appeared before every chunk was in place"
    assert np.array_equal(Store("unorderedmem://bucket/store").get_value(content), value)
    assert not [p for p in UnorderedMemoryFS.store if "/tmp/" in p], "the staging copy is removed"


def test_pull_of_a_run_with_a_missing_record_fails_and_publishes_nothing(tmp_path):
    remote = tmp_path / "remote"
    run_toy(tmp_path, remote)
    record = next((remote / "records").rglob("*.json"))
    record.unlink()
    result = CliRunner().invoke(main, ["pull", "toy", str(remote), "--store", str(tmp_path / "local")])
    assert result.exit_code == 1 and record.stem[:12] in result.output, result.output
    assert [p for p in (tmp_path / "local").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("damage", ["remove", "flip"])
def test_pull_of_a_run_with_a_missing_or_damaged_shard_fails_and_publishes_nothing(tmp_path, damage):
    remote = tmp_path / "remote"
    run_toy(tmp_path, remote)
    shard = sorted((remote / "items").rglob("*.json"))[1]
    if damage == "remove":
        shard.unlink()
    else:
        shard.write_text(shard.read_text().replace('"items":["', '"items":["0'))
    with pytest.raises(VerificationError, match="shard"):
        pull_run(Store(str(remote)), Store(str(tmp_path / "local")), "toy")
    assert [p for p in (tmp_path / "local").rglob("*") if p.is_file()] == []


def test_verify_checks_that_everything_a_run_references_exists(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    assert verify_store(Store(str(root)))[1] == []
    record = next((root / "records").rglob("*.json"))
    record.unlink()
    result = CliRunner().invoke(main, ["verify", "--store", str(root)])
    assert result.exit_code == 1 and "runs/toy.json" in result.output and record.stem[:12] in result.output


def age(path: pathlib.Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_temporaries_are_shown_by_status_and_removed_by_gc_after_a_grace_period(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    stale_file = root / "records" / "ab" / ".tmp-0123"
    stale_file.parent.mkdir(parents=True, exist_ok=True)
    stale_file.write_bytes(b"x" * 100)
    age(stale_file, 7200)
    stale_dir = root / "tmp" / ".tmp-dead"
    (stale_dir / "c").mkdir(parents=True)
    (stale_dir / "c" / "0").write_bytes(b"y" * 50)
    for p in (stale_dir / "c" / "0", stale_dir / "c", stale_dir):
        age(p, 7200)
    live = root / "values" / ".tmp-live"
    live.write_bytes(b"z")
    status = store_status(Store(str(root)))
    assert status["temporaries"] == {"entries": 3, "bytes": 151}
    doomed, size = collect_garbage(Store(str(root)), dry_run=False)
    assert sorted(doomed) == ["records/ab/.tmp-0123", "tmp/.tmp-dead"] and size == 150
    assert live.exists() and not stale_file.exists() and not stale_dir.exists()
    assert "computed" not in run_toy(tmp_path, root).split("results")[0]


def test_a_killed_pull_leaves_its_staging_folder_where_gc_finds_it(tmp_path, monkeypatch):
    import cirkit.engine.sharing as sharing

    remote, local = tmp_path / "remote", tmp_path / "local"
    run_toy(tmp_path, remote)

    def killed(*args, **kwargs):  # the process dies before it can clean up: no finally clause runs
        raise Interrupted

    monkeypatch.setattr(sharing, "_verify_entry", killed)
    monkeypatch.setattr(sharing.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(Interrupted):
        pull_run(Store(str(remote)), Store(str(local)), "toy")
    monkeypatch.undo()
    left = store_status(Store(str(local)))["temporaries"]
    assert left["entries"] == 1 and left["bytes"] > 1000, "the staging folder lives in the store's tmp area"
    for p in (local / "tmp").rglob("*"):
        age(p, 7200)
    age(next((local / "tmp").iterdir()), 7200)
    collect_garbage(Store(str(local)), dry_run=False)
    assert store_status(Store(str(local)))["temporaries"]["entries"] == 0


def test_pull_pins_the_run_digest_the_collaborator_publishes(tmp_path):
    from cirkit.engine.sharing import run_digest

    local, remote = tmp_path / "a", tmp_path / "remote"
    run_toy(tmp_path, local)
    pushed = CliRunner().invoke(main, ["push", "toy", str(remote), "--store", str(local)])
    published = run_digest(Store(str(local)), "toy")
    assert published in pushed.output and len(published) == 64
    assert published in CliRunner().invoke(main, ["show", "toy", "--store", str(local)]).output
    # the remote swaps a record for another one with a valid checksum (here: a different creation time)
    record = sorted((remote / "records").rglob("*.json"))[0]
    doc = json.loads(record.read_text())
    doc["created"] = "1999-01-01T00:00:00Z"
    original = record.read_bytes()
    record.write_bytes(checked(doc))
    result = CliRunner().invoke(main, ["pull", "toy", str(remote), "--store", str(tmp_path / "b"), "--expect", published])
    assert result.exit_code == 1 and "digest" in result.output, result.output
    assert not (tmp_path / "b" / "runs").exists()
    record.write_bytes(original)
    result = CliRunner().invoke(main, ["pull", "toy", str(remote), "--store", str(tmp_path / "b"), "--expect", published])
    assert result.exit_code == 0, result.output
    assert run_digest(Store(str(tmp_path / "b")), "toy") == published


def test_the_cli_reports_an_io_error_in_one_line_and_deletes_nothing(tmp_path, monkeypatch):
    """Simulated (root ignores chmod): every read of a value file raises PermissionError."""
    from cirkit.engine.fs import LocalFS

    root = tmp_path / "store"
    run_toy(tmp_path, root)
    before = sorted(p for p in root.rglob("*") if p.is_file())
    real_read = LocalFS.read

    def read(self, path):
        if path.startswith("values/"):
            raise PermissionError(13, "Permission denied", path)
        return real_read(self, path)

    monkeypatch.setattr(LocalFS, "read", read)
    result = CliRunner().invoke(main, ["export", "toy", "metrics", str(tmp_path / "m.json"), "--store", str(root)])
    assert result.exit_code == 1 and "Permission denied" in result.output and "nothing was changed" in result.output
    assert isinstance(result.exception, SystemExit), "a one-line error, not a traceback"
    result = CliRunner().invoke(main, ["run", str(tmp_path / "toy.toml"), "--store", str(root), "--quiet",
                                       "--set", "total.offset=2.0"])
    assert result.exit_code == 1 and "Permission denied" in result.output, result.output
    assert sorted(p for p in root.rglob("*") if p.is_file() and "/runs/" not in str(p)) == \
        [p for p in before if "/runs/" not in str(p)]


def test_gc_removes_nothing_while_a_run_or_a_record_it_reaches_is_corrupt(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    run_toy(tmp_path, root, "other", "embed.dim=299")
    (root / "runs" / "other.json").unlink()  # its entries are garbage now
    store = Store(str(root))
    key = json.loads((root / "runs" / "toy.json").read_text())["outputs"]["metrics"]["key"]
    record = root / store.record_path(key)
    original = record.read_bytes()
    record.write_bytes(original.replace(b'"stage":"total"', b'"stage":"totel"'))  # one flipped letter
    before = sorted(p for p in root.rglob("*") if p.is_file())
    result = CliRunner().invoke(main, ["gc", "--store", str(root)])
    assert result.exit_code == 1 and "removed nothing" in result.output and key in result.output, result.output
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before
    record.write_bytes(original)
    assert len(collect_garbage(Store(str(root)), dry_run=False)[0]) > 3
    assert "computed" not in run_toy(tmp_path, root).split("results")[0]


@pytest.mark.parametrize("loss", ["shard", "arrays"])
def test_verify_repair_then_a_rerun_makes_an_incomplete_run_whole(tmp_path, loss):
    """A lost shard file or lost arrays under intact values: a plain rerun is all hits and would not restore
    them, so repair removes the records whose content is not whole and the rerun recomputes just those."""
    import shutil

    root = tmp_path / "store"
    run_toy(tmp_path, root)
    expected = metrics(root)
    if loss == "shard":
        sorted((root / "items").rglob("*.json"))[1].unlink()
    else:
        shutil.rmtree(root / "arrays")
    assert CliRunner().invoke(main, ["verify", "--repair", "--store", str(root)]).exit_code == 1
    out = run_toy(tmp_path, root)
    assert "computed" in out and metrics(root) == expected
    result = CliRunner().invoke(main, ["verify", "--store", str(root)])
    assert result.exit_code == 0 and "0 corrupt; runs incomplete: 0" in result.output, result.output
