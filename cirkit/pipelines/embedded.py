"""The embedded default world shared by the demo and the methods: the built-in benchmark on disk, cirkit's
trained CLIP, and (for methods) SmolLM2 as the reasoner. Each is a handful of cached stages."""

from __future__ import annotations

import dataclasses

from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig, complete_export, export_files, exported_folder
from ..builtin.stages import checkpoint_ref, generate_builtin, train_builtin_clip
from ..data.stage import BenchmarkConfig, load_benchmark
from ..engine import Artifact, Engine, stage
from ..models.embedded import GGUFConfig, convert_gguf, locate_gguf
from ..training.clip_trainer import TrainConfig

__all__ = ["World", "builtin_world", "embedded_reasoner", "load_layout"]


@dataclasses.dataclass(frozen=True)
class World:
    root: Artifact  # the exported benchmark folder
    clip_folder: Artifact  # the exported trained CLIP folder
    clip: Artifact  # its ClipCheckpoint


def builtin_world(engine: Engine, benchmark: BuiltinConfig, train: TrainConfig, export: ExportConfig) -> World:
    files = engine.run(generate_builtin, benchmark)
    root = engine.run(export_files, export, files=files, step="export_benchmark")
    pairs = engine.run(load_benchmark, BenchmarkConfig("builtin_t2i", split="train"), root=root, step="load_train")
    weights = train_builtin_clip(engine, train, pairs)
    folder = engine.run(export_files, export, files=weights, step="export_clip")
    return World(root, folder, engine.run(checkpoint_ref, None, directory=folder))


def load_layout(engine: Engine, world: World, layout: str, *, step: str) -> Artifact:
    """The built-in benchmark read through the real loader of one official layout."""
    configs = {"t2i": BenchmarkConfig("builtin_t2i", split="test"), "cirr": BenchmarkConfig("cirr", split="val"),
               "circo": BenchmarkConfig("circo", split="val", images_root="images"), "chat": BenchmarkConfig("visdial")}
    return engine.run(load_benchmark, configs[layout], root=world.root, step=step)


def embedded_reasoner(engine: Engine, export: ExportConfig, gguf: GGUFConfig = GGUFConfig()) -> Artifact:
    """The folder of SmolLM2-135M-Instruct converted to safetensors (for the local transformers backend)."""
    files = engine.run(convert_gguf, gguf, weights=engine.run(locate_gguf, gguf, step="locate_reasoner"),
                       step="convert_reasoner")
    if isinstance(files, Artifact) and complete_export(exported_folder(export, files.content), files.content):
        # the folder is there: name it by the weights' digest instead of reading 513 MiB back from the store
        return engine.run(exported_copy, export, content=files.content, step="export_reasoner")
    return engine.run(export_files, export, files=files, step="export_reasoner")


@stage(version=1, volatile=True)
def exported_copy(config: ExportConfig, content: str) -> str:
    """The folder ``export_files`` wrote for the file set with digest ``content`` (the same value it returns)."""
    target = exported_folder(config, content)
    if not complete_export(target, content):
        raise FileNotFoundError(f"{target}: the exported copy of {content[:12]} is gone; run again to re-export it")
    return target
