"""The memoised file digests: right values, only changed files hashed again, and an interrupted hashing run keeps
the chunks it finished."""

import hashlib
import os

import pytest

from cirkit.data import filehash
from cirkit.data.filehash import FileDigests


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(7):
        p = tmp_path / "images" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes([i]) * (100 + i))
        paths.append(str(p))
    return paths


@pytest.fixture
def hashed(monkeypatch):
    """Records every file the digests actually read (the real hash still runs)."""
    seen = []

    def counting(path):
        seen.append(os.path.basename(path))
        return real(path)

    real = filehash.file_digest
    monkeypatch.setattr(filehash, "file_digest", counting)
    return seen


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_digests_are_the_files_sha256_in_order_and_a_rerun_reads_no_file(files, tmp_path, hashed):
    digests = FileDigests(str(tmp_path / "cache"))
    assert digests.digests(files) == [sha(p) for p in files]
    assert sorted(hashed) == sorted(os.path.basename(p) for p in files)
    hashed.clear()
    filehash._opened.clear()  # another process's view: the records are on disk, not in this process's handle
    again = FileDigests(str(tmp_path / "cache"))
    assert again.digests(files[::-1]) == [sha(p) for p in files[::-1]]
    assert again.digest(files[2]) == sha(files[2])
    assert hashed == [], "unchanged files are never read again"


def test_a_changed_file_is_hashed_again_and_only_it(files, tmp_path, hashed):
    digests = FileDigests(str(tmp_path / "cache"))
    before = digests.digests(files)
    hashed.clear()
    with open(files[3], "wb") as f:
        f.write(b"another picture")
    after = digests.digests(files)
    assert hashed == ["3.png"]
    assert after[3] == sha(files[3]) != before[3]
    assert after[:3] == before[:3] and after[4:] == before[4:]


def test_an_interrupted_run_keeps_the_chunks_it_finished(files, tmp_path, monkeypatch, hashed):
    real = filehash.file_digest  # the fixture's counting digest

    def failing(path):
        if path.endswith("5.png"):
            raise OSError("disk went away")
        return real(path)

    digests = FileDigests(str(tmp_path / "cache"))
    digests.chunk = 2
    monkeypatch.setattr(filehash, "file_digest", failing)
    with pytest.raises(OSError, match="disk went away"):
        digests.digests(files)
    hashed.clear()
    monkeypatch.setattr(filehash, "file_digest", real)
    assert digests.digests(files) == [sha(p) for p in files]
    assert "5.png" in hashed
    assert not {"0.png", "1.png", "2.png", "3.png"} & set(hashed), "two whole chunks were recorded before the failure"


def test_a_missing_file_names_itself(files, tmp_path):
    os.remove(files[1])
    with pytest.raises(FileNotFoundError, match="1.png"):
        FileDigests(str(tmp_path / "cache")).digests(files)


def test_a_cache_folder_removed_while_the_process_runs_is_opened_afresh(files, tmp_path, hashed):
    import shutil

    folder = tmp_path / "cache"
    FileDigests(str(folder)).digests(files[:2])
    shutil.rmtree(folder)
    hashed.clear()
    assert FileDigests(str(folder)).digests(files[:2]) == [sha(p) for p in files[:2]]
    assert sorted(hashed) == ["0.png", "1.png"], "the removed records are gone, so both files are read again"
    hashed.clear()
    assert FileDigests(str(folder)).digests(files[:2]) == [sha(p) for p in files[:2]] and hashed == []


def test_a_cache_folder_recreated_by_another_process_is_not_written_through_a_stale_handle(files, tmp_path):
    import shutil

    import diskcache

    folder = tmp_path / "cache"
    FileDigests(str(folder)).digests(files[:1])
    shutil.rmtree(folder)
    other = diskcache.Cache(str(folder), disk=filehash.JSONOnlyDisk)  # another process makes the folder again
    other.set("elsewhere", "x")
    FileDigests(str(folder)).digests(files[1:3])
    on_disk = diskcache.Cache(str(folder), disk=filehash.JSONOnlyDisk)
    assert sum(1 for key in on_disk if key.startswith(files[1])) == 1 and "elsewhere" in on_disk


def test_a_file_changed_while_it_is_read_is_not_recorded(files, tmp_path, monkeypatch):
    real = filehash.file_digest

    def changing(path):
        value = real(path)
        with open(path, "ab") as f:  # a writer appends while the file is hashed
            f.write(b"more")
        return value

    monkeypatch.setattr(filehash, "file_digest", changing)
    digests = FileDigests(str(tmp_path / "cache"))
    digests.digests(files[:1])
    assert len(digests.cache) == 0, "the digest of a file that changed under the hash is not remembered"
