"""Assembling an item-mapping stage's output reads each stored shard once, and nothing it has just written;
an output assembled from many shards is packed (stored whole, with one shard file naming all its items).

At a million items a read is a file open, a checksum and (for a value) a re-hash of its content, so reading
back the shards a run has just written, or each old shard file twice, made a cold run and a rerun with a few
new items cost far more than the work. The store is real (a local folder); its reads are counted by a
``LocalFS`` subclass that records every path it reads.
"""

from __future__ import annotations

import collections
import dataclasses
import json

import numpy as np

from cirkit.engine import Engine, Store, executor, stage
from cirkit.engine.fs import LocalFS
from cirkit.engine.maintenance import collect_garbage, verify_store


class CountingFS(LocalFS):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: collections.Counter[str] = collections.Counter()

    def read(self, path: str) -> bytes | None:
        self.reads[path] += 1
        return super().read(path)


@dataclasses.dataclass(frozen=True)
class Count:
    n: int


@stage(version=1)
def numbers(config: Count) -> tuple[int, ...]:
    return tuple(range(config.n))


@stage(version=1, over="items", shard_size=4)
def squares(config: None, items: tuple[int, ...]) -> np.ndarray:
    return np.array([[float(i) ** 2, float(i)] for i in items])


def run(fs: CountingFS, n: int):
    engine = Engine(Store(fs), progress=False)
    return engine.run(squares, None, items=engine.run(numbers, Count(n)))


def shard_files(fs: CountingFS) -> list[str]:
    return [p for p, _ in fs.walk_files("items") if p.endswith(".json")]


def expected(n: int) -> np.ndarray:
    return np.array([[float(i) ** 2, float(i)] for i in range(n)])


def test_a_cold_run_reads_back_no_shard_or_value_it_wrote(tmp_path):
    fs = CountingFS(str(tmp_path))
    out = run(fs, 40)
    assert len(shard_files(fs)) == 10
    assert [p for p in fs.reads if p.startswith(("items/", "values/", "arrays/"))] == []
    assert np.array_equal(out.value, expected(40))
    assert np.array_equal(Store(str(tmp_path)).get_value(out.content), expected(40))  # as stored, read fresh


def test_a_rerun_with_new_items_reads_each_old_shard_file_once(tmp_path):
    fs = CountingFS(str(tmp_path))
    run(fs, 40)
    old = shard_files(fs)
    fs.reads.clear()
    out = run(fs, 46)
    assert {p: fs.reads[p] for p in old} == {p: 1 for p in old}
    assert len(shard_files(fs)) == 12
    assert np.array_equal(out.value, expected(46))
    clean = Store(str(tmp_path / "clean"))
    assert Engine(clean, progress=False).run(squares, None, items=Engine(clean).run(numbers, Count(46))).content \
        == out.content


def packed_run(tmp_path, monkeypatch, n: int = 40):
    """Pack above 4 parts (the engine's threshold is 64), so 10 shards of 4 items make a packed output."""
    monkeypatch.setattr(executor, "PACK_PARTS", 4)
    fs = CountingFS(str(tmp_path))
    return fs, run(fs, n)


def test_an_output_from_many_shards_is_stored_whole_with_one_shard_naming_every_item(tmp_path, monkeypatch):
    fs, out = packed_run(tmp_path, monkeypatch)
    stored = json.loads(fs.read(Store(fs).value_path(out.content)))
    assert "gather" not in stored  # one value file, not a gather of 10 parts
    docs = Store(fs).namespace_shards(namespace_of(fs, out))
    packs = [d for d in docs.values() if d["value"] == out.content]
    assert len(docs) == 11 and len(packs) == 1 and len(packs[0]["items"]) == 40
    assert np.array_equal(Store(str(tmp_path)).get_value(out.content), expected(40))


def test_after_gc_a_packed_stage_resolves_its_items_from_one_shard_file_and_one_value(tmp_path, monkeypatch):
    fs, out = packed_run(tmp_path, monkeypatch)
    store = Store(fs)
    store.put_run("packed", {"artifacts": [out.key]})
    collect_garbage(store, dry_run=False, grace_seconds=0)
    assert len(shard_files(fs)) == 1
    assert verify_store(store)[1] == []
    fs.reads.clear()
    store.fs.remove(store.record_path(out.key))  # item-level resolution: every item looked up in the index
    again = run(fs, 40)
    assert again.content == out.content
    assert sorted(p.split("/")[0] for p in fs.reads if p.startswith(("items/", "values/"))) == ["items", "values"]


def test_items_added_after_a_pack_are_computed_alone_and_the_pack_is_not_rewritten(tmp_path, monkeypatch):
    fs, out = packed_run(tmp_path, monkeypatch)
    before = set(shard_files(fs))
    grown = run(fs, 46)
    assert len(set(shard_files(fs)) - before) == 2  # the 6 new items' two shards; no new pack (3 parts)
    assert np.array_equal(grown.value, expected(46))
    assert np.array_equal(Store(str(tmp_path)).get_value(grown.content), expected(46))
    assert verify_store(Store(fs))[1] == []


def namespace_of(fs: CountingFS, out) -> str:
    return Store(fs).get_record(out.key)["namespace"]
