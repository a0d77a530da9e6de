"""Streamed and lazily read arrays keep every guarantee of whole ones: an array written block by block gets the digest,
the value's content hash and the stored bytes that writing it whole gives; writing and reading hold about one chunk,
not the array; a failed or killed write publishes nothing; a corrupt chunk is found (at load, or when read later)
and named; a handle reads only the chunks of the rows asked for, in any order."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest

import cirkit.engine.arrays as arrays_module
from cirkit.engine import (
    ArrayStream,
    CorruptArray,
    CorruptionWarning,
    Engine,
    HashError,
    MissingContent,
    Store,
    StoredArray,
    artifact_type,
    digest,
    lazy_fields,
    stage,
)


@artifact_type
@dataclasses.dataclass(frozen=True)
class Table:
    rows: np.ndarray
    name: str = "t"
    eager: np.ndarray | None = None  # an array field not declared lazy: it loads whole


lazy_fields(Table, "rows")


def table(n: int = 50, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).standard_normal((n, 6, 5)).astype(np.float32)
    arr[3, 1, 1] = np.nan  # NaNs hash alike however they are fed
    return arr


def blocks_of(arr: np.ndarray, size: int):
    for i in range(0, len(arr), size):
        yield arr[i:i + size].copy()


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 5 rows of a ``table()`` (120 bytes a row), so that a 50-row table has 10 of them."""
    monkeypatch.setattr(arrays_module, "CHUNK_BYTES", 600)


def zarr_files(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in (root / "arrays").rglob("*") if p.is_file())


@pytest.mark.parametrize("block", [1, 7, 5, 50])  # one row, unaligned with the chunks, aligned, the whole array
def test_a_streamed_array_is_stored_exactly_as_the_whole_one(tmp_path, small_chunks, block):
    arr = table()
    whole, streamed = Store(str(tmp_path / "whole")), Store(str(tmp_path / "streamed"))
    content = whole.put_value(Table(arr, eager=np.arange(300)))
    spilled = streamed.spill(Table(ArrayStream(len(arr), blocks_of(arr, block)), eager=np.arange(300)))
    assert isinstance(spilled.rows, StoredArray) and spilled.rows.digest == digest(arr)
    assert digest(spilled) == content == digest(Table(arr, eager=np.arange(300)))
    assert streamed.put_value(spilled) == content
    files = [p.relative_to(tmp_path / "whole") for p in zarr_files(tmp_path / "whole")]
    assert files == [p.relative_to(tmp_path / "streamed") for p in zarr_files(tmp_path / "streamed")]
    assert len([f for f in files if f.name != "zarr.json"]) > 2  # several chunks, one layout
    for f in files:  # same chunk grid and codecs: byte-identical folders
        assert (tmp_path / "whole" / f).read_bytes() == (tmp_path / "streamed" / f).read_bytes(), f
    loaded = streamed.get_value(content)
    assert isinstance(loaded.rows, StoredArray) and isinstance(loaded.eager, np.ndarray)
    np.testing.assert_array_equal(np.asarray(loaded.rows), arr)
    np.testing.assert_array_equal(np.asarray(whole.get_value(content).rows), arr)


def test_a_handle_reads_the_rows_numpy_would_and_only_their_chunks(tmp_path, small_chunks):
    arr = table()
    store = Store(str(tmp_path))
    handle = store.get_value(store.put_value(Table(arr))).rows
    read = []
    original = handle._chunk
    handle._chunk = lambda c: read.append(c) or original(c)
    rows = np.array([12, 3, 12, 49, -1, 4])
    np.testing.assert_array_equal(handle[rows], arr[rows])
    assert sorted(read) == [0, 2, 9]  # rows 3, 4 | 12 | 49: three chunks of the ten
    np.testing.assert_array_equal(handle[np.array([13, 0])], arr[[13, 0]])
    assert sorted(read) == [0, 2, 9]  # kept: read and hashed once
    for key in (slice(7, 23), slice(None, None, 4), 17, -2, np.array([], np.int64)):
        np.testing.assert_array_equal(handle[key], arr[key])
    assert len(handle) == 50 and handle.shape == arr.shape and handle.dtype == arr.dtype
    with pytest.raises(IndexError, match="50 rows"):
        handle[np.array([50])]


def test_streaming_holds_about_a_chunk_not_the_array(tmp_path, monkeypatch):
    """32 MiB written from 1 MiB blocks in 256 KiB chunks, loaded (which re-hashes it) and read a batch at a time:
    the Python heap's peak stays a small fraction of the array (the whole-array path needs all of it, twice)."""
    monkeypatch.setattr(arrays_module, "CHUNK_BYTES", 256 << 10)
    monkeypatch.setattr(arrays_module, "CACHE_BYTES", 1 << 20)  # four chunks kept
    n, width = 8192, 1024  # rows of 4 KiB
    store = Store(str(tmp_path))

    def blocks():
        for i in range(0, n, 256):
            yield np.random.default_rng(i).standard_normal((256, width), dtype=np.float32)

    tracemalloc.start()
    try:
        value = store.spill(Table(ArrayStream(n, blocks())))
        content = store.put_value(value)
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loaded = store.get_value(content)
        batch = loaded.rows[np.array([5, 4000, 8191, 77])]
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    total = n * width * 4
    np.testing.assert_array_equal(batch[2], np.random.default_rng(7936).standard_normal((256, width),
                                                                                       dtype=np.float32)[255])
    assert write_peak < total / 8, (write_peak, total)
    assert read_peak < total / 8, (read_peak, total)
    assert loaded.rows.verified and batch.shape == (4, width)


def test_a_failed_stream_publishes_nothing_and_leaves_no_temporary(tmp_path, small_chunks):
    arr = table()

    def failing():
        yield arr[:20]
        raise RuntimeError("the tower ran out of memory")

    @stage(version=1)
    def make_table(config: None) -> Table:
        return Table(ArrayStream(len(arr), failing()))

    store = Store(str(tmp_path))
    with pytest.raises(RuntimeError, match="out of memory"):
        Engine(store, progress=False).run(make_table, None)
    assert zarr_files(tmp_path) == [] and not (tmp_path / "values").exists() and not (tmp_path / "records").exists()
    assert list(store.fs.temporaries()) == []


def test_a_killed_write_publishes_nothing(tmp_path):
    """The writing process is killed (SIGKILL, from inside the stream after two blocks): no array, value or record
    is published, the temporary folder is a leftover that gc removes, and the value is a miss."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})
        import cirkit.engine.arrays as arrays_module
        from test_arrays import Table, table
        from cirkit.engine import ArrayStream, Engine, Store, stage
        arrays_module.CHUNK_BYTES = 600
        arr = table()
        def blocks():
            for i in range(0, 50, 10):
                if i == 20:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield arr[i:i + 10]
        @stage(version=1)
        def make_table(config: None) -> Table:
            return Table(ArrayStream(50, blocks()))
        Engine(Store({str(tmp_path / "store")!r}), progress=False).run(make_table, None)
    """)
    (tmp_path / "kill.py").write_text(script)  # a file: the stage's code must have a source to be keyed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(tmp_path / "kill.py")], env=env, capture_output=True)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    tmp_path = tmp_path / "store"
    store = Store(str(tmp_path))
    leftovers = list(store.fs.temporaries())
    assert len(leftovers) == 1 and leftovers[0][1] > 0  # the chunks written before the kill, unpublished
    assert not list(tmp_path.glob("arrays/**/zarr.json"))
    assert not (tmp_path / "values").exists() and not (tmp_path / "records").exists()
    with pytest.raises(MissingContent):
        store.get_value(digest(Table(table())))


def corrupt_chunk(root: pathlib.Path, chunk: int) -> pathlib.Path:
    """Rewrite one chunk of the only stored array with other rows (valid Zarr, wrong bytes); its file."""
    import zarr

    [folder] = [p.parent for p in (root / "arrays").rglob("zarr.json")]
    z = zarr.open_array(store=str(folder), mode="r+")
    rows = slice(chunk * z.chunks[0], (chunk + 1) * z.chunks[0])
    z[rows] = z[rows] + 1
    return folder / "c" / str(chunk) / "0" / "0"


def test_a_corrupt_chunk_is_found_when_the_value_loads(tmp_path, small_chunks):
    store = Store(str(tmp_path))
    content = store.put_value(Table(table()))
    corrupt_chunk(tmp_path, 6)
    with pytest.warns(CorruptionWarning) as caught, pytest.raises(MissingContent):
        store.get_value(content)
    message = str(caught[0].message)
    assert "chunks do not hash to the array's digest" in message and digest(table()) + ".zarr" in message
    assert not list(tmp_path.glob("arrays/**/zarr.json"))  # the corrupt value and its array were removed, so a
    assert not store.has_value(content)  # recompute rewrites them


def test_a_chunk_corrupted_after_loading_is_refused_when_read_and_named(tmp_path, small_chunks):
    arr = table()
    store = Store(str(tmp_path))
    handle = store.get_value(store.put_value(Table(arr))).rows
    assert handle.verified
    file = corrupt_chunk(tmp_path, 3)
    np.testing.assert_array_equal(handle[np.array([0, 49])], arr[[0, 49]])  # other chunks still read
    with pytest.raises(CorruptArray, match=str(file).replace(os.sep, "/")):
        handle[np.array([1, 16])]
    file.write_bytes(b"not zstd")
    with pytest.raises(CorruptArray, match="does not decode"):
        handle[16]


def test_an_unverified_handle_verifies_before_serving_rows(tmp_path, small_chunks):
    store = Store(str(tmp_path))
    content = store.put_value(Table(table()))
    ref = next(r for r in __import__("json").loads(store._read(store.value_path(content)))["arrays"] if "digest" in r)
    corrupt_chunk(tmp_path, 0)
    handle = store._get_array(ref, lazy=True)
    assert isinstance(handle, StoredArray) and not handle.verified
    with pytest.raises(CorruptArray, match="do not hash"):
        handle[np.array([30])]  # a clean chunk, but the array as a whole is not what its digest names


def test_a_stage_returning_a_stream_caches_the_content_of_the_whole_array(tmp_path, small_chunks):
    arr = table()

    @stage(version=1)
    def streamed(config: None) -> Table:
        return Table(ArrayStream(len(arr), blocks_of(arr, 8)))

    @stage(version=1)
    def whole(config: None) -> Table:
        return Table(arr)

    engine = Engine(Store(str(tmp_path)), progress=False)
    first = engine.run(streamed, None)
    assert isinstance(first.value.rows, StoredArray)  # the memo holds the handle, not the consumed stream
    assert first.content == engine.run(whole, None).content
    again = Engine(Store(str(tmp_path)), progress=False)
    hit = again.run(streamed, None)
    assert [s.status for s in again.steps] == ["hit"] and hit.content == first.content
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptionWarning)
        np.testing.assert_array_equal(np.asarray(hit.value.rows), arr)


def test_a_stream_must_deliver_its_rows(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(Exception, match="add up to 20 rows, not the 30"):
        store.spill(Table(ArrayStream(30, blocks_of(table(20), 8))))
    with pytest.raises(Exception, match="does not belong"):
        store.spill(Table(ArrayStream(30, iter([table(10), np.zeros((20, 3), np.float32)]))))
    with pytest.raises(HashError, match="Store.spill"):  # stored only through the engine (or Store.spill)
        store.put_value(Table(ArrayStream(20, blocks_of(table(20), 8))))
    assert list(store.fs.temporaries()) == []


@pytest.mark.parametrize("size", [2, 7])  # blocks shorter than a chunk of 5 rows, and longer, unaligned
def test_a_producer_may_refill_one_buffer_for_every_block(tmp_path, small_chunks, size):
    """Blocks yielded from one reused buffer: what is stored is what was yielded, so rows carried over to the next
    chunk are copies, not views of the buffer."""
    arr = table()

    def refilled():
        buffer = np.empty((size,) + arr.shape[1:], arr.dtype)
        for i in range(0, len(arr), size):
            n = len(arr[i:i + size])
            buffer[:n] = arr[i:i + size]
            yield buffer[:n]

    store = Store(str(tmp_path))
    content = store.put_value(store.spill(Table(ArrayStream(len(arr), refilled()))))
    assert content == digest(Table(arr))
    np.testing.assert_array_equal(np.asarray(store.get_value(content).rows), arr)


def test_a_corrupt_copy_of_a_streamed_array_is_replaced_by_the_next_write(tmp_path, small_chunks):
    # no value names the corrupt folder yet, so nothing else removes it: keeping it would fail every rerun
    arr = table()
    store = Store(str(tmp_path))
    store.spill(Table(ArrayStream(len(arr), blocks_of(arr, 7))))
    file = corrupt_chunk(tmp_path, 4)
    handle = store.spill(Table(ArrayStream(len(arr), blocks_of(arr, 7)))).rows
    np.testing.assert_array_equal(handle[:], arr)
    content = store.put_value(Table(handle))
    np.testing.assert_array_equal(Store(str(tmp_path)).get_value(content).rows[:], arr)
    assert file.exists()  # the folder was replaced whole, chunk 4 with the right bytes


def test_a_big_endian_array_stores_and_loads_under_the_same_content(tmp_path):
    arr = table(200).astype(">f4")  # 24 KB: stored in Zarr, not inline
    store = Store(str(tmp_path))
    content = store.put_value({"a": arr})
    assert content == digest({"a": arr.astype("<f4")})
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptionWarning)
        np.testing.assert_array_equal(Store(str(tmp_path)).get_value(content)["a"], arr)
