"""A store is someone else's data: nothing read from it may act outside it, and hostile content costs bounded work.

Every store here is written by hand the way an adversary would, next to "victim" files that must survive.
"""

import dataclasses
import json
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

from cirkit.cli import main
from cirkit.engine import CorruptionWarning, Engine, MissingContent, Store, digest, stage
from cirkit.engine.hashing import digest_bytes
from cirkit.engine.maintenance import verify_store
from cirkit.engine.sharing import pull_run, push_run

EXP = 'pipeline = "toy_pipeline:toy"\n[items]\nn = 12\n[embed]\ndim = 300\n'


def checked(doc: dict) -> bytes:
    """A document with a valid checksum, as an adversary would write it."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({**body, "checksum": digest_bytes(raw)}, sort_keys=True, separators=(",", ":")).encode()


def run_toy(tmp_path, store, name="toy"):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    result = CliRunner().invoke(main, ["run", str(exp), "--store", str(store), "--quiet", "--name", name])
    assert result.exit_code == 0, result.output
    return result.output


@dataclasses.dataclass(frozen=True)
class Factor:
    factor: int = 3
    name: str = "a"


@stage(version=1)
def double(config: Factor) -> np.ndarray:
    return np.arange(600, dtype=np.float32) * config.factor


# ---------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_pull_of_a_run_listing_dotdot_keys_writes_nothing_outside_the_store(tmp_path, monkeypatch, scheme):
    """The key ``../../payload/<K>`` points two levels above both stores (and above pull's staging folder)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp" / "t"))
    (tmp_path / "systmp" / "t").mkdir(parents=True)
    remote, local = tmp_path / "r" / "store", tmp_path / "l" / "x" / "store"
    run_toy(tmp_path, remote)
    run = json.loads((remote / "runs" / "toy.json").read_text())
    legit = run["artifacts"][0]
    hostile = f"../../payload/{legit}"  # records/../../../payload/<K>.json: two levels above the root
    record = json.loads((remote / "records" / legit[:2] / f"{legit}.json").read_text())
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / f"{legit}.json").write_bytes(checked({**record, "key": hostile}))
    run["artifacts"].append(hostile)
    (remote / "runs" / "toy.json").write_bytes(checked(run))
    result = CliRunner().invoke(main, ["pull", "toy", scheme + str(remote), "--store", str(local)])
    assert result.exit_code == 1 and "invalid" in result.output, result.output
    assert not (tmp_path / "l" / "payload").exists(), "written two levels above the local store"
    assert not (tmp_path / "systmp" / "payload").exists(), "written two levels above the staging folder"
    assert not (local / "runs").exists(), "nothing is published"


def test_a_record_whose_output_escapes_the_store_deletes_nothing(tmp_path):
    root = tmp_path / "store"
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    store = Store(str(root))
    a = Engine(store, progress=False).run(double, Factor())
    path = root / store.record_path(a.key)
    path.write_bytes(checked({**json.loads(path.read_text()), "output": "../victim"}))
    with pytest.warns(CorruptionWarning, match="output"):
        again = Engine(store, progress=False).run(double, Factor())
        assert np.array_equal(again.value, np.arange(600) * 3)
    path.write_bytes(checked({**json.loads(path.read_text()), "output": "../victim"}))
    result = CliRunner().invoke(main, ["show", a.key[:12], "--store", str(root)])
    assert victim.read_text() == "precious"
    assert result.exit_code == 1 and "corrupt" in result.output and result.exception.__class__ is SystemExit


def test_a_value_whose_array_reference_escapes_the_store_removes_nothing(tmp_path):
    root = tmp_path / "store"
    victim = tmp_path / "victim.zarr"
    victim.mkdir()
    (victim / "zarr.json").write_text("{}")
    store = Store(str(root))
    a = Engine(store, progress=False).run(double, Factor())
    path = root / store.value_path(a.content)
    doc = json.loads(path.read_text())
    doc["arrays"][0]["digest"] = "../victim"
    path.write_text(json.dumps(doc))
    with pytest.warns(CorruptionWarning):
        again = Engine(store, progress=False).run(double, Factor())
        assert np.array_equal(again.value, np.arange(600) * 3), "the bad value is recomputed"
    assert (victim / "zarr.json").read_text() == "{}"


def test_names_from_content_are_checked_in_one_place(tmp_path):
    from cirkit.engine.store import BadName

    store = Store(str(tmp_path / "s"))
    good = "0123456789abcdef" * 4
    for bad in ("../victim", "A" * 64, good[:-1], good + "0", "/" + good[1:], "ab/../" + good[6:]):
        for path_of in (store.record_path, store.value_path, store.array_path):
            with pytest.raises(BadName):
                path_of(bad)
        with pytest.raises(BadName):
            store.shard_path(bad, good[:32])
    for bad in ("../victim", "A" * 32, good[:31], good[:33], "../" + good[:29]):
        with pytest.raises(BadName):
            store.shard_path(good, bad)
    assert store.record_path(good) == f"records/01/{good}.json"


def test_the_filesystem_refuses_paths_that_leave_the_root(tmp_path):
    from cirkit.engine.fs import UnsafePath, open_fs

    for fs in (open_fs(str(tmp_path / "s")), open_fs("memory://cirkit-unsafe")):
        for bad in ("../x", "a/../../x", "/etc/x", "a//b", "a/./b"):
            with pytest.raises(UnsafePath):
                fs.write_atomic(bad, b"x")
            with pytest.raises(UnsafePath):
                fs.remove(bad)
    assert not (tmp_path / "x").exists()


def test_a_symlinked_folder_inside_the_store_receives_no_writes(tmp_path):
    from cirkit.engine.fs import UnsafePath

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.json").write_text("x")
    root = tmp_path / "store"
    (root / "records").mkdir(parents=True)
    key = "ab" + "0" * 62
    (root / "records" / "ab").symlink_to(outside, target_is_directory=True)
    (outside / f"{key}.json").write_text("outside")
    store = Store(str(root))
    with pytest.raises(UnsafePath, match="outside the store"):
        store.put_record(key, {"output": "0" * 64})
    with pytest.raises(UnsafePath):
        store.fs.remove(store.record_path(key))
    with pytest.raises(UnsafePath):
        store.fs.write_atomic("records/ab/deeper/x.json", b"x")
    assert sorted(p.name for p in outside.iterdir()) == sorted(["keep.json", f"{key}.json"]), "no folder made either"
    assert (outside / f"{key}.json").read_text() == "outside"


# ---------------------------------------------------------------------------------------------- bounded work

DEEP = b"[" * 100_000


def test_deeply_nested_json_is_corruption_not_a_crash(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    store = Store(str(root))
    run = json.loads((root / "runs" / "toy.json").read_text())
    record = next((root / "records").rglob("*.json"))
    shard = next((root / "items").rglob("*.json"))
    for path in (record, shard, root / "runs" / "toy.json"):
        path.write_bytes(DEEP)
    with pytest.warns(CorruptionWarning):
        assert store.get_run("toy") is None
        assert store.get_record(record.stem) is None
        assert store.get_shard(shard.parent.name, shard.stem) is None
    _, problems = verify_store(store)
    assert {p.path for p in problems} >= {"runs/toy.json", str(record.relative_to(root)), str(shard.relative_to(root))}
    assert "Traceback" not in CliRunner().invoke(main, ["ls", "--store", str(root)]).output
    run_toy(tmp_path, root)  # recomputes the corrupt record and shard
    assert json.loads((root / "runs" / "toy.json").read_text())["metrics"] == run["metrics"]


def test_deeply_nested_value_is_corruption(tmp_path):
    store = Store(str(tmp_path))
    content = store.put_value({"a": [1, 2]})
    (tmp_path / store.value_path(content)).write_bytes(b'{"tree":' + DEEP)
    with pytest.warns(CorruptionWarning):
        with pytest.raises(MissingContent):
            store.get_value(content)


def gather_tower(store: Store, depth: int, n: int = 64) -> list[str]:
    """``depth`` self-consistent gather values, each naming the previous one twice (a rotation by one)."""
    value = np.arange(n, dtype=np.int64)
    hashes = [store.put_value(value)]
    for _ in range(depth):
        value = np.concatenate([value[1:], value[:1]])
        hashes.append(store.put_gather([hashes[-1], hashes[-1]], [[0, 1, n - 1], [1, 0, 1]], digest(value)))
    return hashes


def test_loading_a_gather_tower_reads_each_file_once(tmp_path):
    store = Store(str(tmp_path))
    hashes = gather_tower(store, 12)
    reads = []
    real_read = store.fs.read
    store.fs.read = lambda path: reads.append(path) or real_read(path)
    value = store.get_value(hashes[-1])
    assert np.array_equal(value, np.roll(np.arange(64), -12))
    assert len(reads) <= len(hashes), f"{len(reads)} reads for {len(hashes)} files: loading is not linear"
    reads.clear()
    checked, problems = verify_store(store)
    assert problems == [] and checked == len(hashes)
    assert len(reads) <= 3 * len(hashes), f"verify read {len(reads)} files for {len(hashes)} values"


def test_a_gather_cycle_is_corruption(tmp_path):
    store = Store(str(tmp_path))
    base = store.put_value(np.arange(4))
    fake = "f" * 64
    store.put_gather([fake], [[0, 0, 4]], fake)  # names itself
    store.put_gather([base, fake], [[0, 0, 4], [1, 0, 4]], "e" * 64)
    with pytest.warns(CorruptionWarning):
        with pytest.raises(MissingContent):
            store.get_value("e" * 64)
    assert not store.check_value(fake)


def test_an_array_claiming_a_huge_shape_is_never_read(tmp_path, monkeypatch):
    import zarr

    store = Store(str(tmp_path))
    content = store.put_value(np.arange(5000, dtype=np.float32))
    meta_path = next(tmp_path.rglob("zarr.json"))
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [360_000_000]
    meta_path.write_text(json.dumps(meta))
    shapes_read = []
    real_getitem = zarr.Array.__getitem__

    def spy(self, selection):
        shapes_read.append(tuple(self.shape))
        if self.shape[0] > 5000:
            raise MemoryError("the test refuses to allocate what the metadata claims")
        return real_getitem(self, selection)

    monkeypatch.setattr(zarr.Array, "__getitem__", spy)
    with pytest.warns(CorruptionWarning):
        with pytest.raises(MissingContent):
            store.get_value(content)
    content = store.put_value(np.arange(5000, dtype=np.float32))
    meta_path.write_text(json.dumps(meta))
    _, problems = verify_store(store)
    assert sorted(p.path.split("/")[0] for p in problems) == ["arrays", "values"], problems
    assert "shape" in next(p.what for p in problems if p.path.startswith("arrays/"))
    assert all(s[0] <= 5000 for s in shapes_read), shapes_read


def test_an_unregistered_type_is_corrupt_recomputed_and_repairable(tmp_path):
    from cirkit.data.model import ImageRef

    @stage(version=1)
    def make_ref(config: Factor) -> tuple:
        return (ImageRef(config.name, f"/{config.name}.png"),)

    root = tmp_path / "store"
    store = Store(str(root))
    a = Engine(store, progress=False).run(make_ref, Factor())
    path = root / store.value_path(a.content)
    doc = json.loads(path.read_text())
    doc["tree"]["$tuple"][0]["$dataclass"] = "elsewhere:Thing"
    path.write_text(json.dumps(doc))
    with pytest.warns(CorruptionWarning, match="elsewhere:Thing"):
        assert Engine(store, progress=False).run(make_ref, Factor()).value == (ImageRef("a", "/a.png"),)
    path.write_text(json.dumps(doc))
    _, problems = verify_store(store)
    assert [p.path for p in problems] == [store.value_path(a.content)]
    verify_store(store, repair=True)
    assert verify_store(store)[1] == [] and not path.exists()


def test_push_then_pull_through_a_folder_still_works(tmp_path):
    run_toy(tmp_path, tmp_path / "a")
    push_run(Store(str(tmp_path / "a")), Store(str(tmp_path / "remote")), "toy")
    pull_run(Store(str(tmp_path / "remote")), Store(str(tmp_path / "b")), "toy")
    assert "computed" not in run_toy(tmp_path, tmp_path / "b").split("results")[0]


def test_every_name_a_run_or_record_gives_to_show_diff_or_report_is_checked(tmp_path):
    root = tmp_path / "store"
    run_toy(tmp_path, root)
    store = Store(str(root))
    run_path = root / "runs" / "toy.json"
    run = json.loads(run_path.read_text())
    key = run["artifacts"][0]
    record_path = root / store.record_path(key)
    record = json.loads(record_path.read_text())
    for field in ("output", "key"):
        step = dict(run["steps"][-1], **{field: "../victim"})
        run_path.write_bytes(checked({**run, "steps": [*run["steps"][:-1], step]}))
        with pytest.warns(CorruptionWarning, match="victim"):
            assert store.get_run("toy") is None
    record_path.write_bytes(checked({**record, "input_keys": {"x": "../../victim"}}))
    with pytest.warns(CorruptionWarning, match="victim"):
        assert store.get_record(key) is None
    run_path.write_bytes(checked(run))
    assert CliRunner().invoke(main, ["diff", "toy", "toy", "--store", str(root)]).exit_code == 0


def test_a_shard_listing_a_malformed_item_key_is_corrupt(tmp_path):
    from cirkit.engine.store import BadName, check_names

    good = ["0123456789abcdef" * 4, "f" * 64]
    assert check_names(good) == good
    for bad in ([*good, "../x"], [*good, "F" * 64], [*good, 5], "0" * 64, [good[0][:-1] + "g"]):
        with pytest.raises(BadName):
            check_names(bad)
    store = Store(str(tmp_path))
    shard = store.put_shard("a" * 64, good, np.zeros((2, 3)))
    path = tmp_path / store.shard_path("a" * 64, shard)
    path.write_bytes(checked({**json.loads(path.read_text()), "items": [good[0], "../" + good[1][3:]]}))
    with pytest.warns(CorruptionWarning, match="invalid"):
        assert store.item_index("a" * 64) == {}
