"""Training as cached stages: a run is a chain of segments, each a stage from one checkpoint to the next.

Segment ``k`` (the step ``NAME@STOP``; the last one is ``NAME``) trains from the checkpoint at step
``start`` to ``stop`` and its output is the checkpoint there, stored in the store like any artifact. Its
key holds the task's config, the trainer config with ``steps`` and ``checkpoint_every`` replaced by the
segment's own stop and length, its (start, stop) and the previous checkpoint. Hence:

- a killed run resumes from the last finished segment (those are cache hits) and, since step i depends only
  on the state before it, the seed and i, ends with the same weights as an uninterrupted run;
- changing only ``steps`` reuses every segment of the shared prefix: with checkpoints every 10 steps, a 20-step
  run after a 10-step one computes 10 steps. Segments stop at multiples of ``checkpoint_every`` and at
  ``steps``, so a run continues from the last boundary both runs share (the learning-rate schedule depends
  on the step alone: its horizon is ``decay_steps``, never ``steps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..engine import Artifact, Engine, Pending
from ..engine.stage import Stage
from .checkpoint import Checkpoint
from .config import TrainerConfig
from .loop import train
from .progress import training_progress

__all__ = ["SegmentConfig", "training_stage", "segment_bounds", "fit"]


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    """One segment of a training run: ``task`` is the trained method's own frozen config."""

    task: Any
    trainer: TrainerConfig
    start: int
    stop: int


def segment_bounds(steps: int, every: int) -> list[int]:
    """Where segments end: every multiple of ``every`` below ``steps``, then ``steps``."""
    return [*range(every, steps, every), steps]


def training_stage(build: Callable[[Any, Any], tuple[Any, Any]], *, name: str, version: int | str = 1) -> Stage:
    """Declare the segment stage of a trained method. ``build(task_config, data) -> (task, data_source)``
    turns the method's config and its data input (any artifact value) into a :class:`.Task` and a
    :class:`.DataSource`; its code is part of the stage's identity."""

    def segment(config: SegmentConfig, data: Any, previous: Checkpoint | None) -> Checkpoint:
        start = 0 if previous is None else previous.step
        if start != config.start:
            raise ValueError(f"{name}: segment {config.start}-{config.stop} got the checkpoint of step {start}")
        task, source = build(config.task, data)
        with training_progress(f"{name} steps {config.start}-{config.stop}", config.stop - config.start) as obs:
            return train(task, source, config.trainer, start=previous, stop=config.stop, progress=obs)

    segment.__qualname__ = segment.__name__ = name
    segment.__doc__ = f"One segment of {name}: train from the previous checkpoint to step config.stop."
    return Stage(segment, version=version, name=name, helpers=[build, train])


def fit(engine: Engine, stage: Stage, task: Any, trainer: TrainerConfig, *, data: Any,
        step: str | None = None, start: Any = None) -> Artifact | Pending:
    """Run the segments of ``trainer.steps`` steps through ``engine``; the last checkpoint's artifact.
    The last segment is the step ``NAME`` (``step``, default the stage's name), earlier ones ``NAME@STOP``
    (names label a run's table only; keys do not depend on them). ``start``: a step-0 checkpoint (artifact) to
    train from instead of the task's init (e.g. a pretrained part in place); the segments' keys then hold its key."""
    label, previous = step or stage.name, start
    start = 0
    bounds = segment_bounds(trainer.steps, trainer.checkpoint_every)
    for stop in bounds:
        # the segment's key names its own span, not the run's length or checkpoint spacing
        keyed = dataclasses.replace(trainer, steps=stop, checkpoint_every=stop - start)
        config = SegmentConfig(task, keyed, start, stop)
        name = label if stop == bounds[-1] else f"{label}@{stop}"
        previous = engine.run(stage, config, step=name, data=data, previous=previous)
        start = stop
    return previous
