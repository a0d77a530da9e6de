"""Where a method's data, CLIP and models come from: the embedded default world, or real files and servers."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .. import config_checks as checks
from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig
from ..builtin.stages import checkpoint_ref
from ..data.stage import BenchmarkConfig, load_benchmark
from ..encoders.stages import EmbedConfig
from ..engine import Artifact, Engine
from ..methods.common import SubsetConfig, take_queries
from ..models.config import BackendConfig
from ..models.prompts import PromptConfig
from ..models.requests import Decoding
from ..models.roles import EngineRoles, RoleConfig
from ..training.clip_trainer import TrainConfig
from .embedded import builtin_world, embedded_reasoner, load_layout

__all__ = ["Setup", "DataConfig", "prepare", "clip_substitute", "embedded_llm", "oracle", "with_oracle_noise", "role"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``builtin``: the built-in benchmark in the ``layout``'s format; ``files``: a real benchmark under ``root``
    read by the loader named ``layout``, with the CLIPModel folder ``clip``."""

    source: Literal["builtin", "files"] = "builtin"
    layout: str = "cirr"
    root: str = ""
    split: str = "val"
    clip: str = ""
    max_queries: int = 0

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "max_queries")
        if self.source == "files" and not self.root:
            checks.fail(self, "root", "the benchmark's folder (source = 'files')", self.root)


@dataclasses.dataclass(frozen=True)
class Setup:
    data: DataConfig = DataConfig()
    benchmark: BuiltinConfig = BuiltinConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    embed: EmbedConfig = EmbedConfig()
    oracle_noise: float | None = None  # set: the noise of every oracle role (one knob for a sweep)


def clip_substitute(prompt: str) -> RoleConfig:
    """A vision role answered by CLIP substitutes on the embedded CLIP (``model = ""``)."""
    return RoleConfig(BackendConfig("clip"), PromptConfig(prompt))


def embedded_llm(prompt: str, max_tokens: int = 160) -> RoleConfig:
    """A text role answered by the embedded SmolLM2 (``model = ""``) through the local transformers backend."""
    return RoleConfig(BackendConfig("transformers", batch_size=8), PromptConfig(prompt), Decoding(max_tokens=max_tokens))


def oracle(prompt: str, noise: float = 0.0) -> RoleConfig:
    """A role answered from the built-in benchmark's ground truth (``model = ""``: the world's folder)."""
    return RoleConfig(BackendConfig("oracle", noise=noise), PromptConfig(prompt))


def with_oracle_noise(config):
    """``config`` with ``setup.oracle_noise`` as the noise of each of its oracle roles (unchanged if unset)."""
    noise = config.setup.oracle_noise
    if noise is None:
        return config
    changes = {f.name: dataclasses.replace(v, backend=dataclasses.replace(v.backend, noise=float(noise)))
               for f in dataclasses.fields(config) if isinstance(v := getattr(config, f.name), RoleConfig)
               and v.backend.kind == "oracle"}
    return dataclasses.replace(config, **changes)


role = RoleConfig


def prepare(engine: Engine, setup: Setup, roles: dict[str, RoleConfig]) -> tuple[Artifact, Artifact, EngineRoles]:
    """(split limited to max_queries, CLIP checkpoint, roles wired to the right model folders)."""
    data = setup.data
    world = None
    if data.source == "builtin":
        world = builtin_world(engine, setup.benchmark, setup.train, setup.export)
        split, clip = load_layout(engine, world, data.layout, step="load"), world.clip
    else:
        split = engine.run(load_benchmark, BenchmarkConfig(data.layout, split=data.split), root=data.root, step="load")
        clip = engine.run(checkpoint_ref, None, directory=data.clip)
    split = engine.run(take_queries, SubsetConfig(data.max_queries), split=split)
    folders, reasoner = {}, None
    for name, cfg in roles.items():
        if cfg.backend.model:
            continue
        if cfg.backend.kind == "clip":
            folders[name] = world.clip_folder if world else data.clip
        elif cfg.backend.kind == "oracle":  # the ground truth of the benchmark folder itself
            folders[name] = world.root if world else data.root
        elif cfg.backend.kind == "transformers":
            reasoner = reasoner or embedded_reasoner(engine, setup.export)
            folders[name] = reasoner
    return split, clip, EngineRoles(engine, folders, clip)
