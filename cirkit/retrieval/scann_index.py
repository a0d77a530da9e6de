"""ScaNN (tree partitioning + anisotropic asymmetric hashing + exact reordering) as cached artifacts.

The full index configuration is a frozen dataclass, so it is part of the cache key, and the serialised
index is itself a stored value (its files as byte arrays in Zarr; the temporary directory ScaNN writes into
its asset list is replaced by a placeholder, so the same index has the same content hash wherever built).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np

from .. import config_checks as checks
from ..engine import artifact_type

__all__ = ["ScannConfig", "ScannIndex", "build_scann", "search_scann"]

_DIR = "{INDEX_DIR}"


@dataclasses.dataclass(frozen=True)
class ScannConfig:
    """ScaNN knobs (see ScaNN's algorithm docs). Defaults suit ~1M x 512 unit vectors."""

    num_leaves: int = 2000
    num_leaves_to_search: int = 100
    training_sample_size: int = 250_000
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    reorder: int = 200
    distance: str = "dot_product"

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "num_leaves", "num_leaves_to_search", "training_sample_size",
                                 "dimensions_per_block", "reorder")
        if self.num_leaves_to_search > self.num_leaves:
            checks.fail(self, "num_leaves_to_search", f"at most num_leaves = {self.num_leaves}",
                        self.num_leaves_to_search)
        checks.numbers_at_least(self, 0, "anisotropic_quantization_threshold")
        checks.one_of(self, "distance", ("dot_product", "squared_l2"))


@artifact_type
@dataclasses.dataclass(frozen=True)
class ScannIndex:
    """A serialised ScaNN searcher: file name -> bytes (as uint8 arrays)."""

    config: ScannConfig
    size: int
    files: tuple[tuple[str, np.ndarray], ...]


artifact_type(ScannConfig)


def _scann():
    try:
        import scann
    except ImportError as exc:  # pragma: no cover - scann is a core dependency
        raise ImportError("ScaNN is not installed: pip install 'scann>=1.4,<1.5'") from exc
    return scann


def build_scann(gallery: np.ndarray, config: ScannConfig, k: int, on_phase=None) -> ScannIndex:
    """Build a searcher over (already normalised) gallery vectors and serialise it.

    Memory: ScaNN keeps its own float32 copy of the data (for exact re-ordering) plus the quantised codes,
    and trains the partitioner and quantiser on ``training_sample_size`` rows. Beyond that, the gallery is
    passed without a copy when it is float32 and contiguous, the searcher is freed before its files are read
    back, and each file is read once straight into its array (no intermediate bytes object). ``on_phase``
    (optional) is called with each phase's name as it starts, for memory accounting."""
    phase = on_phase or (lambda name: None)
    scann = _scann()
    phase("train and build (ScaNN)")
    data = np.ascontiguousarray(gallery, dtype=np.float32)
    leaves = max(1, min(config.num_leaves, len(data)))
    builder = scann.scann_ops_pybind.builder(data, k, config.distance)
    builder = builder.tree(num_leaves=leaves, num_leaves_to_search=min(config.num_leaves_to_search, leaves),
                           training_sample_size=min(config.training_sample_size, len(data)))
    builder = builder.score_ah(config.dimensions_per_block,
                               anisotropic_quantization_threshold=config.anisotropic_quantization_threshold)
    searcher = builder.reorder(config.reorder).build()
    del builder
    with tempfile.TemporaryDirectory() as tmp:
        phase("serialise")
        searcher.serialize(tmp)
        del searcher
        phase("read the files back")
        files = []
        for name in sorted(os.listdir(tmp)):
            path = os.path.join(tmp, name)
            if name.endswith(".pbtxt"):
                raw = open(path, "rb").read().replace(tmp.encode(), _DIR.encode())
                files.append((name, np.frombuffer(raw, np.uint8).copy()))
            else:
                files.append((name, np.fromfile(path, np.uint8)))
    return ScannIndex(config, len(data), tuple(files))


def load_searcher(index: ScannIndex, workdir: str):
    for name, data in index.files:
        raw = data.tobytes()
        if name.endswith(".pbtxt"):
            raw = raw.replace(_DIR.encode(), workdir.encode())
        with open(os.path.join(workdir, name), "wb") as f:
            f.write(raw)
    return _scann().scann_ops_pybind.load_searcher(workdir)


def search_scann(index: ScannIndex, queries: np.ndarray, k: int, *, leaves_to_search: int | None = None,
                 exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (indices, scores); asks for one extra neighbour per query when a row must be excluded."""
    extra = 0 if exclude is None else 1
    with tempfile.TemporaryDirectory() as tmp:
        searcher = load_searcher(index, tmp)
        kwargs = {"final_num_neighbors": min(k + extra, index.size)}
        if leaves_to_search:
            kwargs["leaves_to_search"] = leaves_to_search
        idx, scores = searcher.search_batched(np.ascontiguousarray(queries, np.float32), **kwargs)
    idx, scores = np.asarray(idx, np.int64), np.asarray(scores, np.float32)
    width = min(k, index.size)
    out_i = np.full((len(idx), width), -1, np.int64)  # -1 / -inf pad a query left with fewer rows
    out_s = np.full((len(idx), width), -np.inf, np.float32)
    for q, (row_i, row_s) in enumerate(zip(idx, scores)):
        keep = row_i >= 0 if exclude is None else (row_i >= 0) & (row_i != exclude[q])
        row_i, row_s = row_i[keep][:width], row_s[keep][:width]
        out_i[q, : len(row_i)], out_s[q, : len(row_s)] = row_i, row_s
    return out_i, out_s
