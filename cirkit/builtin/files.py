"""File sets as stored values, and their export to a content-addressed folder on disk.

Generated benchmarks and trained checkpoints are cached like any other output (one packed byte array, so
thousands of small files cost one Zarr array), then written to ``DIRECTORY/<digest>/`` by a volatile stage
that does nothing when the folder is already complete, so the real loaders can read them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid

import numpy as np

from ..engine import artifact_type, digest, stage

__all__ = ["FileSet", "pack_files", "ExportConfig", "export_files", "exported_folder", "complete_export",
           "default_directory"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class FileSet:
    names: tuple[str, ...]
    offsets: np.ndarray  # int64, len(names) + 1
    blob: np.ndarray  # uint8

    def items(self):
        for name, view in self.views():
            yield name, view.tobytes()

    def views(self):
        """(name, read-only view into the blob) per file: for writing files out without a copy of each."""
        for i, name in enumerate(self.names):
            yield name, memoryview(self.blob[self.offsets[i] : self.offsets[i + 1]]).toreadonly()


def pack_files(files: dict[str, bytes]) -> FileSet:
    names = tuple(sorted(files))
    sizes = [len(files[n]) for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blob = np.frombuffer(b"".join(files[n] for n in names), np.uint8).copy()
    return FileSet(names, offsets, blob)


def default_directory() -> str:
    return os.environ.get("CIRKIT_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "cirkit", "exported")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Where exported file sets go (the folder name is the content digest, so the location is not in keys)."""

    directory: str = dataclasses.field(default="", metadata={"hash": False})


_MANIFEST = ".cirkit-manifest.json"


def exported_folder(config: ExportConfig, content: str) -> str:
    """Where the file set with content digest ``content`` is (or would be) exported."""
    return os.path.join(os.path.abspath(os.path.expanduser(config.directory or default_directory())), content[:24])


def complete_export(target: str, content: str) -> bool:
    """Whether ``target`` holds a complete export of the file set with content digest ``content``."""
    try:
        return json.loads(open(os.path.join(target, _MANIFEST)).read()).get("digest") == content
    except (OSError, ValueError, AttributeError):
        return False


@stage(version=1, volatile=True)
def export_files(config: ExportConfig, files: FileSet) -> str:
    """Write ``files`` to ``DIRECTORY/<digest>/`` unless a complete copy is there; return that folder."""
    content = digest(files)
    target = exported_folder(config, content)
    if complete_export(target, content):
        return target
    root = os.path.dirname(target)
    tmp = os.path.join(root, f".tmp-{uuid.uuid4().hex}")
    for name, data in files.views():
        path = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(tmp, _MANIFEST), "w") as f:
        json.dump({"digest": content, "files": len(files.names)}, f)
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:  # another process published it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target
