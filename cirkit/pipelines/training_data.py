"""Training data for the trained methods: the built-in benchmark's composed train split on disk, read through
the real CIRR or FashionIQ loader (the same path a user's real train split takes)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .. import config_checks as checks
from ..annotation.cot import import_cot, match_cot
from ..annotation.cot_roles import CotRolesConfig, annotate_with_roles
from ..annotation.cot_scenes import cot_from_scenes
from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig, export_files
from ..builtin.stages import generate_builtin, generate_builtin_train
from ..builtin.train_split import TrainSplitConfig
from ..data.selection import MissingImagesConfig, apply_image_policy
from ..data.stage import BenchmarkConfig, load_benchmark
from ..engine import Artifact, Engine
from ..experiment.pipeline import pipeline
from ..methods.common import SubsetConfig, take_queries
from ..models.config import BackendConfig
from ..models.prompts import PromptConfig
from ..models.roles import EngineRoles, RoleConfig

__all__ = ["TrainData", "builtin_train", "load_builtin_train", "CotDataConfig", "cot_annotations"]


@dataclasses.dataclass(frozen=True)
class TrainData:
    files: Artifact  # the train split's FileSet (what scene-graph CoT annotations read)
    root: Artifact  # the folder it was exported to (what the loaders and the oracle read)


def builtin_train(engine: Engine, benchmark: BuiltinConfig, train: TrainSplitConfig, export: ExportConfig, *,
                  benchmark_files: Artifact | None = None) -> TrainData:
    """The train split, generated (or found cached) and exported. ``benchmark_files``: the benchmark's FileSet
    when the pipeline has already run ``generate_builtin`` (a step name is used once per run)."""
    files = benchmark_files if benchmark_files is not None else engine.run(generate_builtin, benchmark)
    train_files = engine.run(generate_builtin_train, train, benchmark=files)
    return TrainData(train_files, engine.run(export_files, export, files=train_files, step="export_train_split"))


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


@dataclasses.dataclass(frozen=True)
class CotDataConfig:
    """CoT annotations of composed queries. ``root = ""``: the built-in benchmark, its train split (``cirr`` or
    ``fashioniq`` layout) or its val queries (``cirr`` or ``circo``), from the scene graphs, model roles or a file.
    Else a real benchmark split under ``root`` (``cirr``, ``circo`` or ``fashioniq``), from model roles or a file."""

    benchmark: BuiltinConfig = BuiltinConfig()
    train: TrainSplitConfig = TrainSplitConfig()
    export: ExportConfig = ExportConfig()
    root: str = ""  # a real benchmark's folder; "" = the built-in benchmark
    split: str = "train"
    layout: Literal["cirr", "circo", "fashioniq"] = "cirr"
    category: Literal["dress", "shirt", "toptee"] = "dress"  # built-in: one, two or three objects in the reference
    images_root: str = ""  # real files: the image folder relative to root (CIRR: "img_raw"); "" = the layout's own
    missing_images: Literal["fail", "skip"] = "fail"  # real files: skip drops the queries whose images are missing
    source: Literal["scenes", "roles", "file"] = "scenes"
    path: str = ""  # source = "file": a shared annotation file (cirkit's CoT JSON format), checked against the split
    roles: CotRolesConfig = CotRolesConfig(RoleConfig(BackendConfig("oracle"), PromptConfig("cot/captioner")),
                                           RoleConfig(BackendConfig("oracle"), PromptConfig("cot/reasoner")))
    max_queries: int = 0  # 0: all; else the first N

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "max_queries")
        if self.source == "file" and not self.path:
            checks.fail(self, "path", "the annotation file to import (source = 'file')", self.path)
        if self.root:
            if self.source == "scenes":
                checks.fail(self, "source", "'roles' or 'file' (scene graphs exist for the built-in benchmark only)",
                            self.source)
            oracles = [r for r in ("captioner", "reasoner") if getattr(self.roles, r).backend.kind == "oracle"]
            if self.source == "roles" and oracles:
                checks.fail(self, f"roles.{oracles[0]}.backend.kind", "a real model's backend (the oracle knows "
                            "the built-in benchmark only)", "oracle")
            return
        allowed = {"train": ("cirr", "fashioniq"), "val": ("cirr", "circo")}.get(self.split)
        if allowed is None:
            checks.fail(self, "split", "'train' or 'val' (the built-in benchmark's composed splits)", self.split)
        if self.layout not in allowed:
            checks.fail(self, "layout", f"one of {', '.join(allowed)} for split {self.split!r}", self.layout)


def _real_split(engine: Engine, config: CotDataConfig) -> Artifact:
    options: dict = {"split": config.split}
    if config.layout == "fashioniq":
        options.update(category=config.category, images_dir=config.images_root or None)
    else:
        options["images_root"] = config.images_root or None
    split = engine.run(load_benchmark, BenchmarkConfig(config.layout, **options), root=config.root, step="load_split")
    return engine.run(apply_image_policy, MissingImagesConfig(config.missing_images), split=split)


@pipeline("cot_annotations", CotDataConfig)
def cot_annotations(engine: Engine, config: CotDataConfig) -> dict:
    """CoT annotations (caption, reasoning, conclusion) of a split's composed queries."""
    data = None
    if config.root:
        split = _real_split(engine, config)
    elif config.split == "train":
        files = engine.run(generate_builtin, config.benchmark)
        data = builtin_train(engine, config.benchmark, config.train, config.export, benchmark_files=files)
        split = load_builtin_train(engine, data.root, config.layout, config.category)
    else:
        files = engine.run(generate_builtin, config.benchmark)
        data = TrainData(files, engine.run(export_files, config.export, files=files, step="export_benchmark"))
        loader = BenchmarkConfig(config.layout, split="val", images_root="images" if config.layout == "circo" else None)
        split = engine.run(load_benchmark, loader, root=data.root, step="load_val")
    if config.max_queries:
        split = engine.run(take_queries, SubsetConfig(config.max_queries), split=split)
    if config.source == "file":
        imported = engine.run(import_cot, None, path=config.path)
        return {"cot": engine.run(match_cot, None, split=split, annotations=imported)}
    if config.source == "scenes":
        return {"cot": engine.run(cot_from_scenes, None, files=data.files, split=split)}
    folders = {role: data.root for role in ("captioner", "reasoner")
               if data is not None and getattr(config.roles, role).backend.kind == "oracle"}  # its scene graphs
    return {"cot": annotate_with_roles(EngineRoles(engine, folders=folders), config.roles, split)}
