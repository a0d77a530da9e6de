"""Captioning alignment before CIR-CoT's training (``cot.align.objective = "caption"``): LLaVA's first stage.

The contrastive alignment (:mod:`.align`) makes the connector's output resemble the LLM's state of the caption,
but the LLM never learns to *say* what the visual prompt shows: after it, CIR-CoT's chains of thought have the
right form and the wrong scene (README, CIR-CoT). Here the connector (and, with ``cot.align.lora``, the LoRA)
trains on the next-token loss of an image's caption given [visual prompt, target task prompt], through the
frozen head (:func:`.token_loss.frozen_head_nll`), on the same captioned images (``caption_pairs``). CIR-CoT's
training then starts from what it trained (``cot_aligned_start`` with ``carry_lora``).

Keys: the stage's config holds CIR-CoT's model (the LoRA's settings only when the LoRA trains) and prompt texts
and whether the LoRA trains; the schedule is the alignment's trainer config, the images and caption length the
``caption_pairs`` key. It all reaches the training's keys through the aligned checkpoint.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ...lm.adapters import LoraConfig
from ...mllm.model import MLLMConfig, PromptTexts, backbone, prefix_embeddings, run_llm
from ...training import ArraySource, training_stage
from ..cir_lvlm.align import CaptionPairs
from .task import CoTConfig, CoTTask
from .token_loss import frozen_head_nll

__all__ = ["CaptionAlignment", "CaptionAlignTask", "caption_alignment", "align_captioning", "trained_parts"]


@dataclasses.dataclass(frozen=True)
class CaptionAlignment:
    """What the captioning alignment's result depends on besides its schedule and data."""

    model: MLLMConfig
    texts: PromptTexts
    lora: bool  # the LoRA trains (and CIR-CoT's training starts from it)


def caption_alignment(config: CoTConfig) -> CaptionAlignment:
    """The alignment's config for CIR-CoT's ``config``. Without LoRA training the LoRA stays at its init
    (B = 0, the LLM as loaded), so its settings are the defaults' and one alignment serves every LoRA setting."""
    model = config.model if config.align.lora else dataclasses.replace(config.model, lora=LoraConfig())
    return CaptionAlignment(model, config.texts, config.align.lora)


def trained_parts(lora: bool) -> tuple[str, ...]:
    return ("connector", "lora") if lora else ("connector",)


@dataclasses.dataclass(frozen=True)
class CaptionAlignTask:
    """CIR-CoT's parameters (so that its training can start from them); batches: ``image`` frozen vision states,
    ``tokens``/``mask`` the left-padded caption, every real token of which is predicted."""

    base: CoTTask
    lora: bool

    def init(self, rng=None) -> dict:
        return self.base.init(rng)

    def trainable(self, params: dict) -> dict:
        parts = trained_parts(self.lora)
        return {k: jax.tree.map(lambda _, trains=(k in parts): trains, v) for k, v in params.items()}

    def loss(self, params: dict, batch: dict, rng=None):
        base, tokens = self.base, batch["tokens"]
        model = base.config.model
        prefix, _ = prefix_embeddings(model, base.bb, params, batch["image"], base.target_task)
        out, _ = run_llm(model, base.bb, params, prefix, tokens, batch["mask"])
        p, length = prefix.shape[1], tokens.shape[1]
        # hidden state i - 1 predicts token i: the last prefix position predicts the caption's first column
        before = out.hidden[:, p - 1:p + length - 1]
        labels = batch["mask"].astype(jnp.float32)
        weights = labels / jnp.maximum(labels.sum(), 1.0)
        ce = frozen_head_nll(before, base._head(params).astype(before.dtype), tokens, weights)
        return ce, {"ce": ce}


def caption_align_task(config: CaptionAlignment, data: CaptionPairs) -> tuple[CaptionAlignTask, ArraySource]:
    bb = backbone(data.llm, data.llm_digest, config.model, int(data.image.shape[-1]))
    cot = CoTConfig(model=config.model, texts=config.texts)
    task = CaptionAlignTask(CoTTask(cot, bb, data.query_task, data.target_task), config.lora)
    return task, ArraySource({"image": data.image, "tokens": data.tokens, "mask": data.mask})


align_captioning = training_stage(caption_align_task, name="align_captioning", version=1)
