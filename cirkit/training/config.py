"""What a training run is: the optimiser, schedule and loop settings of :func:`~cirkit.training.loop.train`.

Every field is part of the config's hash (a pipeline that holds it names its runs by it); the segment stages
of :mod:`.stages` key each segment by its own (start, stop) instead of ``steps`` and ``checkpoint_every``, so
that a run of N steps is the N-step prefix of a longer one. The learning-rate schedule therefore never
depends on ``steps``: its horizon is ``decay_steps``, a field of its own.
"""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks

__all__ = ["TrainerConfig", "SCHEDULES", "learning_rate_schedule", "without_run_length"]

SCHEDULES = ("cosine", "constant", "rsqrt")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """``batch_size`` pairs per micro-batch, ``grad_accum`` micro-batches per optimiser step (each its own
    contrastive batch: negatives come from the micro-batch). ``schedule``: linear warm-up over
    ``warmup_steps``, then ``cosine`` decay to zero at ``decay_steps`` (and zero after), ``constant``, or
    ``rsqrt`` (inverse square root after warm-up, no horizon). ``clip_grad_norm`` 0 = no clipping.
    ``eval_every`` 0 = no evaluation (the task's ``evaluate``, if it has one, is recorded in checkpoints)."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 256
    grad_accum: int = 1
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    schedule: str = "cosine"
    decay_steps: int = 1000
    weight_decay: float = 0.05
    clip_grad_norm: float = 0.0
    checkpoint_every: int = 250
    eval_every: int = 0

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "steps", "batch_size", "grad_accum", "checkpoint_every")
        checks.integers_at_least(self, 0, "seed", "warmup_steps", "decay_steps", "eval_every")
        checks.numbers_at_least(self, 0, "learning_rate", strict=True)
        checks.numbers_at_least(self, 0, "weight_decay", "clip_grad_norm")
        checks.one_of(self, "schedule", SCHEDULES)
        if self.schedule == "cosine" and self.decay_steps <= self.warmup_steps:
            checks.fail(self, "decay_steps", f"more than warmup_steps = {self.warmup_steps} for a cosine schedule",
                        self.decay_steps)


def without_run_length(cfg: TrainerConfig) -> TrainerConfig:
    """``cfg`` with the run's length (``steps``, ``checkpoint_every``) set to fixed values: the configuration to key
    a stage whose output does not depend on how long the run is (a step-0 state), so that a longer or shorter run
    shares it and therefore the training segments that start from it."""
    return dataclasses.replace(cfg, steps=1, checkpoint_every=1)


def learning_rate_schedule(cfg: TrainerConfig):
    """The optax schedule: a function of the step alone (never of the run's length)."""
    import jax.numpy as jnp
    import optax

    warmup = max(cfg.warmup_steps, 0)
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, warmup, cfg.decay_steps)
    if cfg.schedule == "constant":
        return optax.linear_schedule(0.0, cfg.learning_rate, warmup) if warmup else optax.constant_schedule(cfg.learning_rate)

    def rsqrt(step):
        step = jnp.asarray(step, jnp.float32)
        ramp = jnp.minimum(1.0, (step + 1) / max(warmup, 1)) if warmup else 1.0
        return cfg.learning_rate * ramp * jnp.sqrt(max(warmup, 1) / jnp.maximum(step + 1, max(warmup, 1)))

    return rsqrt
