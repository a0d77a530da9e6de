"""CIR-CoT as a training task and its two inference steps (generate the chain of thought, then embed).

Sequence layout: [visual prompt, task prompt, edit text, chain of thought, end token, EMB] where EMB is a
dedicated learned input embedding whose final hidden state is the retrieval embedding. The loss is the
next-token loss on the chain of thought (and its end token) plus InfoNCE between the EMB states of queries
and of targets ([visual prompt of the target, target task prompt, EMB]), with weights from the config.
At inference the chain of thought is generated greedily (a cached model call), then the whole sequence is
run once more with EMB appended; without CoT (the ablation) EMB follows the edit text directly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp

from ... import config_checks as checks
from ...lm.generate import greedy_generate
from ...mllm.data import ReasonedTexts
from ...mllm.model import (
    Backbone,
    MLLMConfig,
    PromptTexts,
    init_trainable,
    prefix_embeddings,
    run_llm,
    trainable_mask,
)
from ...training.losses import info_nce
from ..cir_lvlm.task import AlignConfig
from .token_loss import frozen_head_nll

__all__ = ["CoTAlignConfig", "CoTConfig", "CoTTask"]

QUERY_TASK = "Describe the reference image, reason about the requested change, then conclude with the target:"
TARGET_TASK = "Describe this image:"


@dataclasses.dataclass(frozen=True)
class CoTAlignConfig(AlignConfig):
    """CIR-LVLM's alignment settings plus the objective: ``contrastive`` (CIR-LVLM's: connector and temperature,
    an image's target-path state against the LLM's state of its caption) or ``caption`` (LLaVA's first stage:
    the next-token loss of an image's caption after its visual prompt; the LoRA trains too with ``lora``)."""

    objective: Literal["contrastive", "caption"] = "contrastive"
    lora: bool = True  # caption objective only: the LoRA trains with the connector (and is carried into training)


@dataclasses.dataclass(frozen=True)
class CoTConfig:
    model: MLLMConfig = MLLMConfig(instance_prompt=False, pooling="last")
    texts: PromptTexts = PromptTexts(query_task=QUERY_TASK, target_task=TARGET_TASK, max_text_tokens=32)
    ce_weight: float = 1.0  # next-token loss on the chain of thought
    contrastive_weight: float = 1.0  # InfoNCE on the embedding token
    temperature: float = 0.07
    max_cot_tokens: int = 64  # longest chain of thought trained on and generated
    use_cot: bool = True  # off: the ablation trained and evaluated without reasoning (EMB right after the edit)
    # connector alignment first (CIR-LVLM's stage, .align); not part of this config's key: its settings reach the
    # training's key through the aligned checkpoint
    align: CoTAlignConfig = dataclasses.field(default=CoTAlignConfig(), metadata={"hash": False})

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "max_cot_tokens")
        checks.numbers_at_least(self, 0, "ce_weight", "contrastive_weight")

    def tokenisation(self) -> ReasonedTexts:
        """What the training sequences depend on (the data stage's config)."""
        return ReasonedTexts(self.texts, self.max_cot_tokens, self.use_cot)


@dataclasses.dataclass(frozen=True)
class CoTTask:
    """A batch: ``reference``/``target`` features, ``tokens``/``mask`` (edit text then CoT then the end token,
    left-padded) and ``labels`` (1 where a token is to be predicted: the CoT and its end token)."""

    config: CoTConfig
    bb: Backbone
    query_task: tuple[int, ...]
    target_task: tuple[int, ...]

    def init(self, rng=None) -> dict:
        tree = init_trainable(self.config.model, self.bb, rng)
        tree.pop("pooling", None)  # the embedding token's state is the embedding: nothing to pool
        std = float(jnp.std(tree["llm"]["embed"].astype(jnp.float32)))
        key = jax.random.PRNGKey(self.config.model.seed + 7)
        tree["emb_token"] = std * jax.random.normal(key, (1, self.bb.lm.hidden_size))
        tree["log_scale"] = jnp.float32(math.log(1.0 / self.config.temperature))
        return tree

    def trainable(self, params: dict) -> dict:
        return trainable_mask(params)

    def _emb(self, params, batch_size):
        return jnp.broadcast_to(params["emb_token"][None], (batch_size, *params["emb_token"].shape))

    def _head(self, params):
        llm = params["llm"]
        return llm["embed"].T if self.bb.lm.tie_word_embeddings else llm["lm_head"]

    def query_states(self, params, features, tokens, mask):
        """Final hidden states ``[b, time, hidden]`` of [prefix, tokens, EMB] and the prefix length."""
        prefix, _ = prefix_embeddings(self.config.model, self.bb, params, features, self.query_task)
        out, _ = run_llm(self.config.model, self.bb, params, prefix, tokens, mask,
                         suffix=self._emb(params, tokens.shape[0]))
        return out.hidden, prefix.shape[1]

    def embed_queries(self, params, features, tokens, mask):
        return self.query_states(params, features, tokens, mask)[0][:, -1]

    def embed_targets(self, params, features):
        prefix, _ = prefix_embeddings(self.config.model, self.bb, params, features, self.target_task)
        empty = jnp.zeros((features.shape[0], 0), jnp.int32)
        out, _ = run_llm(self.config.model, self.bb, params, prefix, empty, empty,
                         suffix=self._emb(params, features.shape[0]))
        return out.hidden[:, -1]

    def loss(self, params: dict, batch: dict, rng=None):
        tokens = batch["tokens"]
        hidden, p = self.query_states(params, batch["reference"], tokens, batch["mask"])
        ce = jnp.float32(0.0)
        if self.config.use_cot and self.config.ce_weight > 0:
            # the labelled tokens (the CoT and its end token) are right-aligned in the last max_cot_tokens + 1
            # columns; hidden state i - 1 predicts token i
            length = tokens.shape[1]
            window = min(length, self.config.max_cot_tokens + 1)
            labels = batch["labels"][:, length - window:].astype(jnp.float32)
            before = hidden[:, p + length - window - 1:p + length - 1]
            weights = labels / jnp.maximum(labels.sum(), 1.0)
            ce = frozen_head_nll(before, self._head(params).astype(hidden.dtype), tokens[:, length - window:], weights)
        contrastive = info_nce(hidden[:, -1], self.embed_targets(params, batch["target"]), params["log_scale"])
        total = self.config.ce_weight * ce + self.config.contrastive_weight * contrastive
        return total, {"ce": ce, "contrastive": contrastive}

    def generate(self, params, features, prompts: list[list[int]], max_new_tokens: int | None = None):
        """Greedy chains of thought (token ids, each ending at its end token) for edit-text ``prompts``."""
        model = self.config.model
        prefix, _ = prefix_embeddings(model, self.bb, params, jnp.asarray(features), self.query_task)
        return greedy_generate(params["llm"], self.bb.lm, prompts, max_new_tokens or self.config.max_cot_tokens,
                               soft_prompt=prefix, lora=params.get("lora"), lora_scale=model.lora.scale)
