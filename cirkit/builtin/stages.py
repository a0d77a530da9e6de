"""Stages of the embedded default: generate the built-in benchmark and train cirkit's own CLIP on it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..data.model import Split
from ..encoders.interface import ModelRef
from ..encoders.stages import clip_checkpoint
from ..engine import stage
from ..engine.progress import Progress
from ..training.clip_trainer import TrainConfig, train_clip
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


@stage(version=1, helpers=[train_clip])
def train_builtin_clip(config: TrainConfig, pairs: Split) -> FileSet:
    """Train the small CLIP on a split's (caption, image) pairs; the result is a CLIPModel directory's files."""
    images = {im.id: im for im in pairs.gallery.images}
    targets = [images[t.target] for t in pairs.truths]
    pixels = np.stack([np.asarray(Image.open(im.path).convert("RGB")) for im in targets])
    captions = [q.text for q in pairs.queries]
    with Progress().bar("train CLIP", total=config.steps, unit="steps") as advance:  # lines without a TTY
        files, _ = train_clip(config, pixels, captions, progress=advance)
    return pack_files(files)


@stage(version=1, volatile=True)
def checkpoint_ref(config: None, directory: str) -> ModelRef:
    """Identify an exported checkpoint folder by its content."""
    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise FileNotFoundError(f"{directory}: not a CLIPModel folder (no config.json)")
    return clip_checkpoint(directory)
