"""CIR-LVLM as a training task: the query (reference image features, edit text) and its target (target image
features) go through the same MLLM path, each with its task prompt, and an InfoNCE loss pulls matching pairs
together within the batch.

The task protocol the trainer drives: ``init()`` -> the trainable tree, ``loss(trainable, batch)`` -> (scalar,
metrics). A batch holds the frozen vision features of references and targets and the left-padded edit-text
token ids; everything else (the frozen LLM, the task prompt ids) is bound to the task.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ...mllm.model import Backbone, MLLMConfig, init_trainable, pooled, prefix_embeddings, run_llm

__all__ = ["LVLMConfig", "LVLMTask", "info_nce"]

QUERY_TASK = "Apply the requested change to the reference image and describe the image that results:"
TARGET_TASK = "Describe this image:"


@dataclasses.dataclass(frozen=True)
class LVLMConfig:
    """CIR-LVLM's model and loss settings (the training schedule belongs to the trainer's config)."""

    model: MLLMConfig = MLLMConfig()
    query_task: str = QUERY_TASK  # the task-level instruction for queries (dropped with model.task_prompt off)
    target_task: str = TARGET_TASK  # and for targets
    temperature: float = 0.07  # initial InfoNCE temperature (learned)
    max_text_tokens: int = 48


def info_nce(queries, targets, log_scale):
    """Symmetric InfoNCE over a batch of L2-normalised pairs with a learned (capped) logit scale."""
    q = queries / jnp.linalg.norm(queries, axis=-1, keepdims=True).clip(1e-6)
    t = targets / jnp.linalg.norm(targets, axis=-1, keepdims=True).clip(1e-6)
    logits = jnp.exp(jnp.minimum(log_scale, math.log(100.0))) * q @ t.T
    labels = jnp.arange(q.shape[0])
    lq = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=1), labels[:, None], axis=1).mean()
    lt = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=0), labels[None, :], axis=0).mean()
    return 0.5 * (lq + lt), logits


class LVLMTask:
    """The frozen backbone and task prompts bound to a config; pure functions of the trainable tree."""

    def __init__(self, config: LVLMConfig, bb: Backbone, query_task_ids, target_task_ids) -> None:
        self.config, self.bb = config, bb
        self.query_task = np.asarray(query_task_ids, np.int32)
        self.target_task = np.asarray(target_task_ids, np.int32)

    def init(self) -> dict:
        tree = init_trainable(self.config.model, self.bb)
        tree["log_scale"] = jnp.float32(math.log(1.0 / self.config.temperature))
        return tree

    def embed_queries(self, trainable: dict, features, tokens, mask):
        """Reference features ``[b, n, d]`` and edit-text ids ``[b, t]`` (left-padded) -> ``[b, hidden]``."""
        model = self.config.model
        prefix, key_loss = prefix_embeddings(model, self.bb, trainable, features, self.query_task)
        out, full_mask = run_llm(model, self.bb, trainable, prefix, tokens, mask)
        return pooled(model, trainable, out.hidden, full_mask), key_loss

    def embed_targets(self, trainable: dict, features):
        model = self.config.model
        prefix, key_loss = prefix_embeddings(model, self.bb, trainable, features, self.target_task)
        empty = jnp.zeros((features.shape[0], 0), jnp.int32)
        out, full_mask = run_llm(model, self.bb, trainable, prefix, empty, empty)
        return pooled(model, trainable, out.hidden, full_mask), key_loss

    def loss(self, trainable: dict, batch: dict):
        q, q_keys = self.embed_queries(trainable, batch["reference"], batch["tokens"], batch["mask"])
        t, t_keys = self.embed_targets(trainable, batch["target"])
        contrastive, logits = info_nce(q, t, trainable["log_scale"])
        total = contrastive + self.config.model.pool.key_weight * (q_keys + t_keys)
        accuracy = jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(logits.shape[0]))
        return total, {"contrastive": contrastive, "accuracy": accuracy}
