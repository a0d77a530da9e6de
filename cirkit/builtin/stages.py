"""Stages of the embedded default: generate the built-in benchmark and train cirkit's own CLIP on it."""

from __future__ import annotations

import os

from PIL import Image

from ..data.model import Split
from ..encoders.interface import ModelRef
from ..encoders.stages import clip_checkpoint
from ..engine import Artifact, Engine, Pending, stage
from ..training.checkpoint import Checkpoint
from ..training.clip_trainer import TrainConfig, clip_files, train_clip_segment
from ..training.stages import fit
from .benchmark import BuiltinConfig, generate_files
from .files import FileSet, pack_files
from .train_split import TrainSplitConfig, generate_train_files

__all__ = ["generate_builtin", "generate_builtin_train", "train_builtin_clip", "checkpoint_ref"]


@stage(version=1, helpers=[generate_files, pack_files])
def generate_builtin(config: BuiltinConfig) -> FileSet:
    """Render every image and write every annotation file of the built-in benchmark (deterministic)."""
    return pack_files(generate_files(config))


@stage(version=1, helpers=[generate_train_files, pack_files])
def generate_builtin_train(config: TrainSplitConfig, benchmark: FileSet) -> FileSet:
    """The composed train split (CIRR and FashionIQ train layouts), disjoint from ``benchmark``'s composed queries.

    Its own stage (off the demo's path), so the benchmark's files and every key downstream of them stay as they were."""
    return pack_files(generate_train_files(config, dict(benchmark.items())))


def train_builtin_clip(engine: Engine, config: TrainConfig, pairs: Artifact | Pending) -> Artifact | Pending:
    """Train the small CLIP on a split's (caption, image) pairs (cached segments, steps
    ``train_builtin_clip@STEP`` and the last ``train_builtin_clip``; see :mod:`cirkit.training.stages`);
    the result is a CLIPModel directory's files."""
    checkpoint = fit(engine, train_clip_segment, config.spec(), config.trainer(), data=pairs,
                     step="train_builtin_clip")
    return engine.run(clip_folder_files, config, checkpoint=checkpoint, pairs=pairs)


@stage(version=1, helpers=[clip_files, pack_files])
def clip_folder_files(config: TrainConfig, checkpoint: Checkpoint, pairs: Split) -> FileSet:
    """The trained CLIP's final checkpoint in the Hugging Face CLIPModel layout, with its loss curve."""
    images = {im.id: im for im in pairs.gallery.images}
    with Image.open(images[pairs.truths[0].target].path) as first:
        size = first.size[0]
    return pack_files(clip_files(config, checkpoint, [q.text for q in pairs.queries], size))


@stage(version=1, volatile=True)
def checkpoint_ref(config: None, directory: str) -> ModelRef:
    """Identify an exported checkpoint folder by its content."""
    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise FileNotFoundError(f"{directory}: not a CLIPModel folder (no config.json)")
    return clip_checkpoint(directory)
