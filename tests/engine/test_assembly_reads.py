"""Assembling an item-mapping stage's output reads each stored shard once, and nothing it has just written.

At a million items a read is a file open, a checksum and (for a value) a re-hash of its content, so reading
back the shards a run has just written, or each old shard file twice, made a cold run and a rerun with a few
new items cost far more than the work. The store is real (a local folder); its reads are counted by a
``LocalFS`` subclass that records every path it reads.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from cirkit.engine import Engine, Store, stage
from cirkit.engine.fs import LocalFS


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
