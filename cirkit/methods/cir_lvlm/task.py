"""CIR-LVLM as a task of the generic trainer: the query (reference image features, edit text) and its target
(target image features) go through the same MLLM path, each with its task prompt, and InfoNCE pulls matching
pairs together within the batch (plus the prompt pool's surrogate key loss).

The task is a frozen, hashable dataclass (a static jit argument): the config, the frozen backbone (by folder
and digest) and the task prompts' token ids. ``init`` returns the frozen LLM under ``llm`` and the trainable
parts; ``trainable`` marks all but ``llm``.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from ... import config_checks as checks
from ...mllm.model import (
    Backbone,
    MLLMConfig,
    PromptTexts,
    init_trainable,
    pooled,
    prefix_embeddings,
    run_llm,
    trainable_mask,
)
from ...mllm.pooling import POOLINGS
from ...training.losses import info_nce

__all__ = ["AlignConfig", "LVLMConfig", "LVLMTask"]


@dataclasses.dataclass(frozen=True)
class PoolingHead:
    """How the pooling is trained. ``separate = false`` (the default, the paper's way): jointly with the rest.
    ``separate = true`` (the pooling ablation's protocol): the backbone (connector, prompt pool, LoRA) trains
    with ``backbone_pooling``, then the configured pooling and the temperature alone are fitted for ``steps``
    steps on the frozen backbone's hidden states, so a sweep over pooling kinds shares one backbone training."""

    separate: bool = False
    backbone_pooling: str = "weighted_mean"
    steps: int = 100
    learning_rate: float = 1e-2

    def __post_init__(self) -> None:
        if self.backbone_pooling not in POOLINGS:
            checks.fail(self, "backbone_pooling", "one of " + ", ".join(POOLINGS), self.backbone_pooling)
        checks.integers_at_least(self, 1, "steps")
        checks.numbers_at_least(self, 0, "learning_rate", strict=True)


@dataclasses.dataclass(frozen=True)
class AlignConfig:
    """``steps = 0``: off (the paper's LVLM is already aligned). ``images``: how many captioned images (the
    first of the caption split). ``captions``/``layout``: with real data, a benchmark folder whose train split
    pairs images with captions (read by the loader of ``layout``); the built-in world's own t2i train split
    otherwise."""

    steps: int = 0
    learning_rate: float = 3e-3
    batch_size: int = 32
    warmup_steps: int = 20
    seed: int = 0
    images: int = 4000
    max_caption_tokens: int = 32
    captions: str = ""
    layout: str = "builtin_t2i"

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "steps", "warmup_steps", "seed")
        checks.integers_at_least(self, 1, "batch_size", "images", "max_caption_tokens")
        checks.numbers_at_least(self, 0, "learning_rate", strict=True)


@dataclasses.dataclass(frozen=True)
class LVLMConfig:
    """CIR-LVLM's model and loss settings (the schedule is the trainer's config)."""

    model: MLLMConfig = MLLMConfig()
    texts: PromptTexts = PromptTexts()
    temperature: float = 0.07  # initial InfoNCE temperature (learned)
    hard_negatives: bool = False  # add each query's near miss (CIRR train subsets) as an extra candidate
    head: PoolingHead = PoolingHead()
    # not part of this config's key: the alignment's settings reach the training's key through its checkpoint
    align: AlignConfig = dataclasses.field(default=AlignConfig(), metadata={"hash": False})

    def backbone(self) -> LVLMConfig:
        """The config the backbone trains with: itself (with a separate head: with the backbone pooling), with
        default head settings, so that its key holds no swept pooling kind and no head setting it ignores."""
        if not self.head.separate:
            return dataclasses.replace(self, head=PoolingHead())
        model = dataclasses.replace(self.model, pooling=self.head.backbone_pooling)
        return dataclasses.replace(self, model=model, head=PoolingHead())


@dataclasses.dataclass(frozen=True)
class LVLMTask:
    """Batches: ``reference``/``target`` frozen image features ``[b, tokens, dim]``, ``tokens``/``mask`` the
    left-padded edit text."""

    config: LVLMConfig
    bb: Backbone
    query_task: tuple[int, ...]
    target_task: tuple[int, ...]

    def init(self, rng=None) -> dict:
        tree = init_trainable(self.config.model, self.bb, rng)
        tree["log_scale"] = jnp.float32(math.log(1.0 / self.config.temperature))
        return tree

    def trainable(self, params: dict) -> dict:
        return trainable_mask(params)

    def embed_queries(self, params: dict, features, tokens, mask):
        """Reference features and edit-text ids -> (``[b, hidden]``, surrogate key loss)."""
        model = self.config.model
        prefix, key_loss = prefix_embeddings(model, self.bb, params, features, self.query_task)
        out, full_mask = run_llm(model, self.bb, params, prefix, tokens, mask)
        return pooled(model, params, out.hidden, full_mask), key_loss

    def embed_targets(self, params: dict, features):
        model = self.config.model
        prefix, key_loss = prefix_embeddings(model, self.bb, params, features, self.target_task)
        empty = jnp.zeros((features.shape[0], 0), jnp.int32)
        out, full_mask = run_llm(model, self.bb, params, prefix, empty, empty)
        return pooled(model, params, out.hidden, full_mask), key_loss

    def loss(self, params: dict, batch: dict, rng=None):
        q, q_keys = self.embed_queries(params, batch["reference"], batch["tokens"], batch["mask"])
        t, t_keys = self.embed_targets(params, batch["target"])
        negatives = None
        if self.config.hard_negatives and "negative" in batch:
            negatives = self.embed_targets(params, batch["negative"])[0]
        contrastive = info_nce(q, t, params["log_scale"], hard_negatives=negatives)
        total = contrastive + self.config.model.pool.key_weight * (q_keys + t_keys)
        return total, {"contrastive": contrastive, "keys": q_keys + t_keys}


