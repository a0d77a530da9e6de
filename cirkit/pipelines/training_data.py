"""Training data for the trained methods: the built-in benchmark's composed train split on disk, read through
the real CIRR or FashionIQ loader (the same path a user's real train split takes)."""

from __future__ import annotations

from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig, export_files
from ..builtin.stages import generate_builtin, generate_builtin_train
from ..builtin.train_split import TrainSplitConfig
from ..data.stage import BenchmarkConfig, load_benchmark
from ..engine import Artifact, Engine

__all__ = ["builtin_train_root", "load_builtin_train"]


def builtin_train_root(engine: Engine, benchmark: BuiltinConfig, train: TrainSplitConfig, export: ExportConfig) -> Artifact:
    """The exported train split's folder (the benchmark is generated, or found cached, first)."""
    files = engine.run(generate_builtin, benchmark)
    train_files = engine.run(generate_builtin_train, train, benchmark=files)
    return engine.run(export_files, export, files=train_files, step="export_train_split")


def load_builtin_train(engine: Engine, root: Artifact, layout: str = "cirr", category: str | None = None, *,
                       step: str = "load_train_split") -> Artifact:
    """The train triplets as a :class:`~cirkit.data.model.Split` (``layout``: ``cirr`` or ``fashioniq`` with a
    ``category``: ``dress``, ``shirt`` or ``toptee`` = one, two or three objects in the reference)."""
    if layout == "cirr":
        config = BenchmarkConfig("cirr", split="train")
    elif layout == "fashioniq":
        config = BenchmarkConfig("fashioniq", split="train", category=category or "dress")
    else:
        raise ValueError(f"the built-in train split has the layouts cirr and fashioniq, not {layout!r}")
    return engine.run(load_benchmark, config, root=root, step=step)
