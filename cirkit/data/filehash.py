"""Content hashes of image files, memoised across processes.

Hashing a 123k-image gallery on every run would dominate a cached rerun, so digests are remembered in a
diskcache keyed by (path, size, mtime_ns, inode). The cache uses a JSON-only disk that refuses to
unpickle anything, so a cache copied from elsewhere cannot run code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import diskcache

from ..engine import digest, file_digest

__all__ = ["JSONOnlyDisk", "FileDigests"]


class JSONOnlyDisk(diskcache.JSONDisk):
    """diskcache's JSON disk, minus the pickle fallback it inherits on reads."""

    def get(self, key, raw):
        if not raw:
            raise ValueError("this cache stores JSON keys only")
        return super().get(key, raw)

    def fetch(self, mode, filename, value, read):
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache entry")
        return super().fetch(mode, filename, value, read)


def _default_dir() -> str:
    return os.environ.get("CIRKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cirkit", "file-digests")


_opened: dict[str, tuple[tuple[int, int], diskcache.Cache]] = {}
_opening = threading.Lock()


def _database_id(directory: str) -> tuple[int, int] | None:
    try:
        st = os.stat(os.path.join(directory, diskcache.core.DBNAME))
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _open(directory: str) -> diskcache.Cache:
    """One open cache per folder and process: opening one connects to SQLite and writes its settings (a write
    transaction each time every load made a ``FileDigests``). A database file removed or replaced since (another
    process recreated the folder) is opened afresh, so records never go to a deleted file."""
    with _opening:
        known = _opened.get(directory)
        if known is not None and known[0] == _database_id(directory):
            return known[1]
        if known is not None:
            known[1].close()
        cache = diskcache.Cache(directory, disk=JSONOnlyDisk, size_limit=2**30)
        _opened[directory] = (_database_id(directory), cache)
        return cache


class FileDigests:
    """``digests(paths)`` -> SHA-256 of each file, hashing only files whose stat changed since last time."""

    chunk = 1024

    def __init__(self, directory: str | None = None) -> None:
        self.cache = _open(os.path.abspath(directory or _default_dir()))

    @staticmethod
    def _key(path: str) -> str:
        st = os.stat(path)
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"

    def digest(self, path: str) -> str:
        return self.digests([path])[0]

    def digests(self, paths: Iterable[str], workers: int = 8) -> list[str]:
        """Known files are looked up one after another in this thread (one SQLite connection: a pool's threads
        each open their own and contend for the GIL, 3x slower on 2,500 cached files); only the files whose stat
        changed are read and hashed, in ``workers`` threads, and recorded a transaction per ``chunk`` files."""
        paths = list(paths)
        keys = [self._key(p) for p in paths]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, value in enumerate(found) if not isinstance(value, str)]
        if missing:
            with ThreadPoolExecutor(min(workers, len(missing))) as pool:
                for start in range(0, len(missing), self.chunk):  # an interrupted run keeps the chunks it hashed
                    chunk = missing[start:start + self.chunk]
                    hashed = list(pool.map(file_digest, [paths[i] for i in chunk]))
                    for i, value in zip(chunk, hashed):
                        found[i] = value
                    unchanged = [i for i in chunk if self._key(paths[i]) == keys[i]]  # changed while read: not kept
                    with self.cache.transact():  # the write lock is held for the writes only, not the stats
                        for i in unchanged:
                            self.cache.set(keys[i], found[i])
        return found

    def folder_digest(self, path: str) -> str:
        """One digest for a model folder: its top-level files' names and contents (hidden files ignored)."""
        files = sorted(f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f)) and not f.startswith("."))
        return digest(list(zip(files, self.digests([os.path.join(path, f) for f in files]))))
