"""Connector alignment before CIR-LVLM's training (``lvlm.align.steps > 0``): the LLaVA stage-1 analogue.

The paper starts from a pretrained LVLM whose visual connector already speaks the LLM's language. The embedded
backbone's connector starts random, so the edit text's states start unrelated to the image's and InfoNCE is
satisfied by image similarity alone (the edit is ignored; README, CIR-LVLM). The alignment trains the connector
(and the temperature) alone, contrastively: an image's target-path embedding against the LLM's pooled state of its
caption (LoRA, prompt pool and pooling frozen at their init). CIR training then starts from the aligned
connector (everything else from its usual init, the temperature from the config).

Stages: ``caption_pairs`` (frozen vision states and caption ids of captioned images), the segments of
``align_connector`` (the trainer's segments over them) and ``aligned_start`` (the CIR training's step-0
checkpoint with the aligned connector), which ``fit`` takes as its ``start``: the training's keys hold the
alignment's, and with alignment off nothing of this runs and the keys are today's.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...data.errors import DataError
from ...data.model import Split
from ...encoders.interface import ModelRef
from ...engine import artifact_type, stage
from ...mllm.batching import pad_rows
from ...mllm.data import TrainingTriplets, _pad_id
from ...mllm.loading import folder_digest, task_ids, tokenizer_of
from ...mllm.model import PromptTexts, backbone, pooled, run_llm
from ...mllm.vision import load_vision
from ...training import ArraySource, Checkpoint, TrainerConfig, train, training_stage
from ...training.losses import info_nce
from .stages import lvlm_task
from .task import AlignConfig, LVLMConfig, LVLMTask

__all__ = ["CaptionSettings", "CaptionPairs", "AlignTask", "caption_pairs", "align_trainer", "align_connector",
           "StartConfig", "aligned_start", "with_aligned_connector", "ALIGNED"]

ALIGNED = ("connector", "log_scale")  # what the alignment trains
CARRIED = ("connector",)  # what the CIR training takes from it (the temperature restarts at the config's)


@artifact_type
@dataclasses.dataclass(frozen=True)
class CaptionPairs:
    image: np.ndarray  # [n, tokens, dim] frozen vision states of each captioned image
    tokens: np.ndarray  # [n, max_caption_tokens] int32 caption ids, left-padded
    mask: np.ndarray  # [n, max_caption_tokens] int32
    query_task: tuple[int, ...]
    target_task: tuple[int, ...]
    llm: str
    llm_digest: str


@dataclasses.dataclass(frozen=True)
class CaptionSettings:
    texts: PromptTexts
    images: int
    max_caption_tokens: int


@stage(version=1, helpers=[pad_rows, task_ids])
def caption_pairs(config: CaptionSettings, split: Split, llm: str, vision: ModelRef) -> CaptionPairs:
    """The first ``images`` (image, caption) pairs of a text-to-image split: each query's text is its target
    image's caption."""
    if split.truths is None:
        raise DataError(f"{split.benchmark} {split.split}: no ground truth, so no captioned images to align on")
    paths = {im.id: im.path for im in split.gallery.images}
    pairs = [(q.text, t.target) for q, t in zip(split.queries, split.truths)][:config.images]
    missing = [image for _, image in pairs if image not in paths]
    if missing:
        raise DataError(f"{split.benchmark} {split.split}: image {missing[0]!r} is not in the split's gallery")
    states = load_vision(vision.path, vision.digest).states_of_files([paths[image] for _, image in pairs])
    tok = tokenizer_of(llm)
    width = config.max_caption_tokens
    tokens, mask = pad_rows([task_ids(tok, text) for text, _ in pairs], _pad_id(llm), width, width=width)
    return CaptionPairs(states, tokens, mask, tuple(task_ids(tok, config.texts.query_task)),
                        tuple(task_ids(tok, config.texts.target_task)), llm, folder_digest(llm))


@dataclasses.dataclass(frozen=True)
class AlignTask:
    """CIR-LVLM's parameters; the connector and temperature train, on (image, caption) batches."""

    base: LVLMTask

    def init(self, rng=None) -> dict:
        return self.base.init(rng)

    def trainable(self, params: dict) -> dict:
        return {k: jax.tree.map(lambda _, trains=(k in ALIGNED): trains, v) for k, v in params.items()}

    def loss(self, params: dict, batch: dict, rng=None):
        image, _ = self.base.embed_targets(params, batch["image"])
        model = self.base.config.model
        empty = jnp.zeros((batch["tokens"].shape[0], 0, self.base.bb.lm.hidden_size), jnp.float32)
        out, mask = run_llm(model, self.base.bb, params, empty, batch["tokens"], batch["mask"])
        caption = pooled(model, params, out.hidden, mask)
        contrastive = info_nce(image, caption, params["log_scale"])
        return contrastive, {"contrastive": contrastive}


def align_task(config: LVLMConfig, data: CaptionPairs) -> tuple[AlignTask, ArraySource]:
    bb = backbone(data.llm, data.llm_digest, config.model, int(data.image.shape[-1]))
    task = LVLMTask(config, bb, data.query_task, data.target_task)
    return AlignTask(task), ArraySource({"image": data.image, "tokens": data.tokens, "mask": data.mask})


align_connector = training_stage(align_task, name="align_connector", version=1)


def align_trainer(align: AlignConfig) -> TrainerConfig:
    """The alignment's schedule: one segment, cosine decay over its steps."""
    return TrainerConfig(seed=align.seed, steps=align.steps, batch_size=align.batch_size,
                         learning_rate=align.learning_rate, warmup_steps=min(align.warmup_steps, align.steps - 1),
                         decay_steps=align.steps, weight_decay=0.01, checkpoint_every=align.steps)


@dataclasses.dataclass(frozen=True)
class StartConfig:
    config: LVLMConfig
    trainer: TrainerConfig


def with_aligned_connector(fresh: Checkpoint, aligned: Checkpoint, stage_name: str) -> Checkpoint:
    """``fresh`` (a training's step-0 state) with the connector tensors of ``aligned`` in place of its own."""
    carried = {k: v for k, v in aligned.params.items() if k.split("/")[0] in CARRIED}
    if not carried or any(k not in fresh.params or np.shape(fresh.params[k]) != np.shape(v) for k, v in carried.items()):
        raise ValueError(f"{stage_name}: the aligned checkpoint's connector does not match the training's")
    return fresh.with_params({**fresh.params, **carried})


@stage(version=1, helpers=[lvlm_task, train, with_aligned_connector])
def aligned_start(config: StartConfig, data: TrainingTriplets, aligned: Checkpoint) -> Checkpoint:
    """The CIR training's state at step 0 (its usual init and fresh optimiser state) with the aligned connector."""
    task, source = lvlm_task(config.config, data)
    return with_aligned_connector(train(task, source, config.trainer, stop=0), aligned, "aligned_start")
