"""The pooling head fitted on a frozen, trained CIR-LVLM backbone (``lvlm.head.separate = true``).

The pooling ablation compares pooling kinds; training the whole model once per kind repeats the same backbone
training N times. With a separate head the backbone (connector, prompt pool, LoRA) trains once with
``head.backbone_pooling`` and its key holds no swept pooling kind; each pooling kind then fits only its own
parameters (the weighted mean's score vector) and the temperature, on the frozen backbone's hidden states.
The cost of the shortcut: the backbone's hidden states were shaped for the backbone pooling, which favours it
(an ablation of a fixed representation, not of end-to-end training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from ...engine import Artifact, Engine, Pending, stage
from ...mllm.data import TrainingTriplets
from ...training import Checkpoint, TrainerConfig, fit, flatten, train, unflatten
from ...training.config import without_run_length
from .align import StartConfig, align_connector, align_trainer, aligned_start
from .stages import lvlm_task, train_cir_lvlm
from .task import LVLMConfig, LVLMTask

__all__ = ["HeadFit", "HeadTask", "fit_pooling_head", "aligned", "train_lvlm", "HEAD_PARAMS"]

HEAD_PARAMS = ("pooling", "log_scale")  # what a head fit trains; everything else comes from the backbone


@dataclasses.dataclass(frozen=True, eq=False)
class HeadTask:
    """``base`` with the backbone's trained tensors (flat names) in place and only the head trainable.
    Compared by identity (``eq=False``): it holds arrays, and each fit compiles its own step."""

    base: LVLMTask
    backbone: Mapping

    def init(self, rng=None) -> dict:
        flat = flatten(self.base.init(rng))
        for name, value in self.backbone.items():
            if name.startswith("pooling/") or name not in flat:
                continue  # the head's own pooling starts fresh; a backbone pooling of another kind is dropped
            flat[name] = jax.numpy.asarray(np.reshape(value, np.shape(flat[name])))
        return unflatten(flat)

    def trainable(self, params: dict) -> dict:
        return {k: jax.tree.map(lambda _, trains=(k in HEAD_PARAMS): trains, v) for k, v in params.items()}

    def loss(self, params: dict, batch: dict, rng=None):
        return self.base.loss(params, batch, rng)


@dataclasses.dataclass(frozen=True)
class HeadFit:
    config: LVLMConfig
    trainer: TrainerConfig


def head_trainer(config: LVLMConfig, trainer: TrainerConfig) -> TrainerConfig:
    """The backbone's trainer (seed, batch) with the head's steps and a constant learning rate."""
    head = config.head
    return dataclasses.replace(trainer, steps=head.steps, checkpoint_every=head.steps, learning_rate=head.learning_rate,
                               schedule="constant", warmup_steps=0, weight_decay=0.0, grad_accum=1, eval_every=0)


@stage(version=1, helpers=[lvlm_task, train])
def fit_pooling_head(config: HeadFit, data: TrainingTriplets, backbone: Checkpoint) -> Checkpoint:
    """Fit the configured pooling (and temperature) on the frozen backbone; the result holds the backbone's
    tensors and the head's, the shape an export reads."""
    base, source = lvlm_task(config.config, data)
    fitted = train(HeadTask(base, dict(backbone.params)), source, config.trainer)
    kept = {k: v for k, v in backbone.params.items() if k.split("/")[0] not in HEAD_PARAMS}
    return fitted.with_params({**kept, **fitted.params})


def aligned(engine: Engine, config: LVLMConfig, trainer: TrainerConfig, *, data: Artifact,
            captions: Artifact | None) -> Artifact | Pending | None:
    """The CIR training's step-0 checkpoint with the aligned connector; None with alignment off."""
    if not config.align.steps:
        return None
    if captions is None:
        raise ValueError("lvlm.align.steps > 0 needs captioned images (caption_pairs) to align the connector on")
    connector = fit(engine, align_connector, config, align_trainer(config.align), data=captions)
    # keyed without the run's length (the step-0 state does not depend on it): a longer run continues
    return engine.run(aligned_start, StartConfig(config, without_run_length(trainer)), data=data, aligned=connector)


def train_lvlm(engine: Engine, config: LVLMConfig, trainer: TrainerConfig, *, data: Artifact,
               captions: Artifact | None = None) -> Artifact | Pending:
    """CIR-LVLM's training as stages: with ``config.align.steps`` the connector alignment on ``captions``
    (:mod:`.align`), then the segments of ``train_cir_lvlm`` (jointly, or the backbone of a separate head) from
    it, then, with a separate head, ``train_cir_lvlm_head``."""
    start = aligned(engine, config.backbone(), trainer, data=data, captions=captions)
    backbone = fit(engine, train_cir_lvlm, config.backbone(), trainer, data=data, start=start)
    if not config.head.separate:
        return backbone
    return engine.run(fit_pooling_head, HeadFit(config, head_trainer(config, trainer)), data=data, backbone=backbone,
                      step="train_cir_lvlm_head")
