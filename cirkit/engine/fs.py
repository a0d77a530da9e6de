"""The few file operations the store needs, on a local directory or on any fsspec URL.

Local writes are atomic: bytes go to a temporary name in the same directory and are renamed into place,
so a reader sees either nothing or the whole file. On object stores a single PUT is already atomic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

__all__ = ["StoreFS", "LocalFS", "FsspecFS", "open_fs"]


class StoreFS:
    """Interface: paths are '/'-separated and relative to the store root."""

    root: str

    def read(self, path: str) -> bytes | None: ...
    def write_atomic(self, path: str, data: bytes) -> None: ...
    def exists(self, path: str) -> bool: ...
    def list(self, path: str) -> list[str]: ...
    def walk_files(self, path: str) -> Iterator[tuple[str, int]]: ...
    def remove(self, path: str) -> None: ...
    def zarr_store(self, path: str): ...
    def publish_dir(self, tmp: str, path: str) -> None: ...
    def temp_dir(self) -> str: ...


class LocalFS(StoreFS):
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        os.makedirs(self.root, exist_ok=True)

    def _p(self, path: str) -> str:
        return os.path.join(self.root, path)

    def read(self, path: str) -> bytes | None:
        try:
            with open(self._p(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        full = self._p(path)
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, full)

    def exists(self, path: str) -> bool:
        return os.path.exists(self._p(path))

    def list(self, path: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._p(path)) if not n.startswith(".tmp-"))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk_files(self, path: str) -> Iterator[tuple[str, int]]:
        base = self._p(path)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".tmp-"))
            for name in sorted(filenames):
                if name.startswith(".tmp-"):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    size = os.path.getsize(full)
                except FileNotFoundError:
                    continue
                yield os.path.relpath(full, self.root).replace(os.sep, "/"), size

    def remove(self, path: str) -> None:
        full = self._p(path)
        if os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.remove(full)
            except FileNotFoundError:
                pass

    def zarr_store(self, path: str):
        from zarr.storage import LocalStore

        return LocalStore(self._p(path))

    def temp_dir(self) -> str:
        tmp_root = self._p("tmp")
        os.makedirs(tmp_root, exist_ok=True)
        return os.path.relpath(tempfile.mkdtemp(prefix=".tmp-", dir=tmp_root), self.root).replace(os.sep, "/")

    def publish_dir(self, tmp: str, path: str) -> None:
        """Rename a finished temporary directory into place; if another writer won the race, keep theirs."""
        full = self._p(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        try:
            os.rename(self._p(tmp), full)
        except OSError:
            shutil.rmtree(self._p(tmp), ignore_errors=True)
            if not os.path.isdir(full):
                raise


class FsspecFS(StoreFS):
    """A store on any fsspec URL (s3://, gs://, memory://, file://)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self.url = url.rstrip("/")

    def _p(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def read(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._p(path))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(path), data)

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._p(path))

    def list(self, path: str) -> list[str]:
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._p(path), detail=False))
        except FileNotFoundError:
            return []

    def walk_files(self, path: str) -> Iterator[tuple[str, int]]:
        try:
            found = self.fs.find(self._p(path), detail=True)
        except FileNotFoundError:
            return
        for full, info in sorted(found.items()):
            yield full[len(self.root) + 1 :], int(info.get("size") or 0)

    def remove(self, path: str) -> None:
        try:
            self.fs.rm(self._p(path), recursive=True)
        except FileNotFoundError:
            pass

    def zarr_store(self, path: str):
        from zarr.storage import FsspecStore
        from zarr.storage._fsspec import _make_async  # wraps sync filesystems (memory://, file://)

        return FsspecStore(_make_async(self.fs), path=self._p(path), read_only=False)

    def temp_dir(self) -> str:
        return f"tmp/.tmp-{uuid.uuid4().hex}"

    def publish_dir(self, tmp: str, path: str) -> None:
        if self.fs.exists(self._p(path)):
            self.remove(tmp)
            return
        self.fs.mv(self._p(tmp), self._p(path), recursive=True)


def open_fs(location: str) -> StoreFS:
    """A local directory for plain paths and file:// URLs, fsspec for any other URL."""
    if location.startswith("file://"):
        return LocalFS(location[len("file://") :])
    if "://" in location:
        return FsspecFS(location)
    return LocalFS(location)
