"""The few file operations the store needs, on a local directory or on any fsspec URL.

Local writes are atomic: bytes go to a temporary name in the same directory and are renamed into place,
so a reader sees either nothing or the whole file. On object stores a single PUT is already atomic, and a
directory is published file by file with its manifest (``zarr.json``) last, so it is invisible until whole.

Every path is relative to the root and checked before use: no ``..``, ``.`` or empty parts, nothing
absolute, and (locally) no write or removal through a symlinked folder that leads outside the root.
Temporaries (``.tmp-*``) are hidden from listings and reported by :meth:`StoreFS.temporaries`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator

__all__ = ["StoreFS", "LocalFS", "FsspecFS", "open_fs", "UnsafePath", "TEMP_PREFIX"]

TEMP_PREFIX = ".tmp-"
MANIFEST = "zarr.json"  # the file whose presence makes a published directory visible


class UnsafePath(ValueError):
    """A path that would leave the store's root (``..``, absolute, or through a symlink); nothing was done."""


def check_relative(path: str) -> str:
    """``path`` if it is a clean '/'-separated path below the root ('' is the root itself)."""
    if path == "":
        return path
    if not isinstance(path, str) or path.startswith("/") or "\\" in path or "\x00" in path or any(
        part in ("", ".", "..") for part in path.split("/")
    ):
        raise UnsafePath(f"refusing the store path {path!r}: it is not a plain path below the store root")
    return path


def _is_temporary(path: str) -> bool:
    return any(part.startswith(TEMP_PREFIX) for part in path.split("/"))


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
    def temporaries(self) -> Iterator[tuple[str, int, float]]:
        """(path, bytes, seconds since last modified) of every ``.tmp-*`` file or folder (left by a killed
        writer, or in use by a live one)."""
        ...


class LocalFS(StoreFS):
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        os.makedirs(self.root, exist_ok=True)

    def _p(self, path: str) -> str:
        return os.path.join(self.root, check_relative(path)) if path else self.root

    def _w(self, path: str) -> str:
        """The full path for a write or removal, refused if its folder resolves outside the root."""
        full = self._p(path)
        folder = os.path.realpath(os.path.dirname(full))
        root = os.path.realpath(self.root)
        if folder != root and not folder.startswith(root + os.sep):
            raise UnsafePath(f"refusing to write {full}: its folder resolves to {folder}, outside the store {root} "
                             "(a symlinked folder?)")
        return full

    def read(self, path: str) -> bytes | None:
        try:
            with open(self._p(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_atomic(self, path: str, data: bytes) -> None:
        full = self._w(path)  # checked before any folder is made
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, full)

    def exists(self, path: str) -> bool:
        return os.path.exists(self._p(path))

    def list(self, path: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._p(path)) if not n.startswith(TEMP_PREFIX))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk_files(self, path: str) -> Iterator[tuple[str, int]]:
        base = self._p(path)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(TEMP_PREFIX))
            for name in sorted(filenames):
                if name.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    size = os.path.getsize(full)
                except FileNotFoundError:
                    continue
                yield os.path.relpath(full, self.root).replace(os.sep, "/"), size

    def temporaries(self) -> Iterator[tuple[str, int, float]]:
        now = time.time()
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in sorted(dirnames + filenames):
                if not name.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                size, newest = _tree_size_and_mtime(full)
                yield os.path.relpath(full, self.root).replace(os.sep, "/"), size, now - newest
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(TEMP_PREFIX))

    def remove(self, path: str) -> None:
        full = self._w(path)
        if os.path.isdir(full) and not os.path.islink(full):
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
        tmp_root = os.path.dirname(self._w("tmp/x"))
        os.makedirs(tmp_root, exist_ok=True)
        return os.path.relpath(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=tmp_root), self.root).replace(os.sep, "/")

    def publish_dir(self, tmp: str, path: str) -> None:
        """Rename a finished temporary directory into place; if another writer won the race, keep theirs."""
        full = self._w(path)
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
        return f"{self.root}/{check_relative(path)}" if path else self.root

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
            names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._p(path), detail=False))
            return sorted(n for n in names if not n.startswith(TEMP_PREFIX))
        except FileNotFoundError:
            return []

    def walk_files(self, path: str) -> Iterator[tuple[str, int]]:
        try:
            found = self.fs.find(self._p(path), detail=True)
        except FileNotFoundError:
            return
        for full, info in sorted(found.items()):
            rel = full[len(self.root) + 1 :]
            if not _is_temporary(rel):
                yield rel, int(info.get("size") or 0)

    def temporaries(self) -> Iterator[tuple[str, int, float]]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        entries: dict[str, list[float]] = {}
        now = time.time()
        for full, info in found.items():
            parts = full[len(self.root) + 1 :].split("/")
            for i, part in enumerate(parts):
                if part.startswith(TEMP_PREFIX):
                    entry = entries.setdefault("/".join(parts[: i + 1]), [0, float("-inf")])
                    entry[0] += int(info.get("size") or 0)
                    entry[1] = max(entry[1], _modified(info, now))
                    break
        for path, (size, newest) in sorted(entries.items()):
            yield path, int(size), now - newest

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
        return f"tmp/{TEMP_PREFIX}{uuid.uuid4().hex}"

    def publish_dir(self, tmp: str, path: str) -> None:
        """Move the files of a finished temporary directory into place one by one, the manifest last, so a
        reader (who looks for the manifest) never sees half of it. Names are content-addressed, so a
        concurrent writer of the same directory writes the same bytes."""
        if not self.fs.exists(f"{self._p(path)}/{MANIFEST}"):
            files = sorted(full[len(self._p(tmp)) + 1 :] for full in self.fs.find(self._p(tmp)))
            for rel in sorted(files, key=lambda r: r == MANIFEST):
                self.fs.mv(f"{self._p(tmp)}/{rel}", f"{self._p(path)}/{check_relative(rel)}")
        self.remove(tmp)


def _modified(info: dict, default: float) -> float:
    """Seconds since the epoch an fsspec listing entry was last modified (back ends name it differently)."""
    for field in ("mtime", "LastModified", "last_modified", "updated", "created", "timeCreated"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return value.timestamp()
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return default


def _tree_size_and_mtime(full: str) -> tuple[int, float]:
    """Bytes below a file or folder and the newest modification time in it (a live writer keeps it fresh)."""
    try:
        newest = os.lstat(full).st_mtime
        if not os.path.isdir(full) or os.path.islink(full):
            return os.lstat(full).st_size, newest
    except FileNotFoundError:
        return 0, time.time()
    size = 0
    for dirpath, dirnames, filenames in os.walk(full):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            newest = max(newest, st.st_mtime)
            if name in filenames:
                size += st.st_size
    return size, newest


def open_fs(location: str) -> StoreFS:
    """A local directory for plain paths and file:// URLs, fsspec for any other URL."""
    if location.startswith("file://"):
        return LocalFS(location[len("file://") :])
    if "://" in location:
        return FsspecFS(location)
    return LocalFS(location)
