"""Connector alignment before CIR-CoT's training (``cot.align.steps > 0``), CIR-LVLM's stage reused.

The embedded backbone's connector starts random: the visual prompt means nothing to the LLM, so the image enters
neither the chain of thought's caption nor the embedding, and InfoNCE is met by image similarity alone (the
same failure as CIR-LVLM's, README). The alignment is CIR-LVLM's (:mod:`..cir_lvlm.align`): the connector and
the temperature train contrastively on the world's captioned images, an image's target-path state against the
LLM's state of its caption, here with CIR-CoT's own model settings (no instance prompt, the last position) and
task prompts. CIR-CoT's training then starts from the aligned connector (``cot_aligned_start``: its usual init
and fresh optimiser state, the connector replaced); everything else, the embedding token included, starts as
without alignment.

``cot.align.objective = "caption"`` replaces the contrastive stage with a captioning one (:mod:`.caption_align`,
LLaVA's first stage), whose connector, and LoRA with ``cot.align.lora``, the training then starts from.

The ``cot.align`` block is left out of the config's key: its settings reach the training's keys through the
aligned checkpoint (``fit(..., start=)``), and ``steps = 0`` runs none of this, so the keys are those of a
training without alignment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...engine import Artifact, Engine, Pending, stage
from ...lm.adapters import LoraConfig
from ...mllm.data import TrainingTriplets
from ...training import Checkpoint, TrainerConfig, fit, train
from ...training.config import without_run_length
from ..cir_lvlm.align import align_connector, align_trainer, with_aligned_connector
from ..cir_lvlm.task import LVLMConfig
from .caption_align import align_captioning, caption_alignment, trained_parts
from .stages import cot_task
from .task import CoTConfig

__all__ = ["alignment_config", "CoTStart", "cot_aligned_start", "aligned"]


def alignment_config(config: CoTConfig) -> LVLMConfig:
    """The CIR-LVLM config whose alignment fits CIR-CoT's connector: the same model (connector shape, LLM
    prefix, no instance prompt, ``last`` pooling), task prompts and initial temperature. The LoRA settings are
    the defaults': the LoRA starts at zero (B = 0) and does not train in the alignment, so they cannot change
    its result, and one alignment serves every LoRA setting. Pooling is always ``last``: CIR-CoT's embedding is
    its embedding token's state and its key leaves ``cot.model.pooling`` out, so that field must not change the
    alignment either."""
    model = dataclasses.replace(config.model, lora=LoraConfig(), use_lora=True, pooling="last")
    return LVLMConfig(model=model, texts=config.texts, temperature=config.temperature, align=config.align)


@dataclasses.dataclass(frozen=True)
class CoTStart:
    config: CoTConfig
    trainer: TrainerConfig
    carry_lora: bool = False  # the alignment trained the LoRA (captioning with cot.align.lora): start from it


@stage(version=1, helpers=[cot_task, train, with_aligned_connector])
def cot_aligned_start(config: CoTStart, data: TrainingTriplets, aligned: Checkpoint) -> Checkpoint:
    """CIR-CoT's training state at step 0 (its usual init and fresh optimiser state) with the aligned connector
    (and the aligned LoRA with ``carry_lora``)."""
    task, source = cot_task(config.config, data)
    start = with_aligned_connector(train(task, source, config.trainer, stop=0), aligned, "cot_aligned_start")
    if not config.carry_lora:
        return start
    lora = {k: v for k, v in aligned.params.items() if k.split("/")[0] == "lora"}
    if not lora or any(k not in start.params or np.shape(start.params[k]) != np.shape(v) for k, v in lora.items()):
        raise ValueError("cot_aligned_start: the aligned checkpoint's LoRA does not match the training's")
    return start.with_params({**start.params, **lora})


def aligned(engine: Engine, config: CoTConfig, trainer: TrainerConfig, *, data: Artifact,
            captions: Artifact | None) -> Artifact | Pending | None:
    """CIR-CoT's step-0 checkpoint with the aligned connector (stage ``align_connector`` on ``captions``, then
    ``cot_aligned_start``); None with alignment off."""
    if not config.align.steps:
        return None
    if captions is None:
        raise ValueError("cot.align.steps > 0 needs captioned images (caption_pairs) to align the connector on")
    schedule = align_trainer(config.align)
    if config.align.objective == "caption":
        connector = fit(engine, align_captioning, caption_alignment(config), schedule, data=captions)
        carry_lora = "lora" in trained_parts(config.align.lora) and config.model.use_lora
    else:
        connector = fit(engine, align_connector, alignment_config(config), schedule, data=captions)
        carry_lora = False
    # the step-0 state does not depend on the run's length: keyed without it, so that a longer or shorter run
    # (more steps, or the first checkpoints of a run) shares the start and hence the segments
    start = CoTStart(config, without_run_length(trainer), carry_lora)
    return engine.run(cot_aligned_start, start, data=data, aligned=connector)
