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

import jax
import jax.numpy as jnp
import numpy as np

from ...lm.generate import greedy_generate
from ...mllm.model import Backbone, MLLMConfig, init_trainable, prefix_embeddings, run_llm
from ..cir_lvlm.task import info_nce

__all__ = ["CoTConfig", "CoTTask", "cot_text", "COT_PARTS"]

COT_PARTS = ("caption", "reasoning", "conclusion")
QUERY_TASK = "Describe the reference image, reason about the requested change, then conclude with the target:"
TARGET_TASK = "Describe this image:"


def cot_text(caption: str, reasoning: str, conclusion: str) -> str:
    """The structured chain of thought the model learns to write (one labelled line per part)."""
    return f"Caption: {caption.strip()}\nReasoning: {reasoning.strip()}\nConclusion: {conclusion.strip()}"


@dataclasses.dataclass(frozen=True)
class CoTConfig:
    model: MLLMConfig = MLLMConfig(instance_prompt=False, pooling="last")
    query_task: str = QUERY_TASK
    target_task: str = TARGET_TASK
    ce_weight: float = 1.0  # next-token loss on the chain of thought
    contrastive_weight: float = 1.0  # InfoNCE on the embedding token
    temperature: float = 0.07
    max_cot_tokens: int = 64


class CoTTask:
    """A batch: ``reference``/``target`` features, ``tokens``/``mask`` (edit text then CoT then the end token,
    left-padded) and ``labels`` (1 where a token is to be predicted: the CoT and its end token)."""

    def __init__(self, config: CoTConfig, bb: Backbone, query_task_ids, target_task_ids) -> None:
        self.config, self.bb = config, bb
        self.query_task = np.asarray(query_task_ids, np.int32)
        self.target_task = np.asarray(target_task_ids, np.int32)

    def init(self) -> dict:
        tree = init_trainable(self.config.model, self.bb)
        tree.pop("pooling", None)  # the embedding token's state is the embedding: nothing to pool
        key = jax.random.PRNGKey(self.config.model.seed + 7)
        tree["emb_token"] = self.bb.embed_std * jax.random.normal(key, (1, self.bb.config.hidden_size))
        tree["log_scale"] = jnp.float32(math.log(1.0 / self.config.temperature))
        return tree

    def _emb(self, trainable, batch_size):
        return jnp.broadcast_to(trainable["emb_token"][None], (batch_size, *trainable["emb_token"].shape))

    def _head(self, hidden):
        params = jax.lax.stop_gradient(self.bb.params)
        head = params["embed"].T if self.bb.config.tie_word_embeddings else params["lm_head"]
        return hidden @ head.astype(hidden.dtype)

    def query_states(self, trainable, features, tokens, mask):
        """Final hidden states ``[b, time, hidden]`` of [prefix, tokens, EMB] and the prefix length."""
        prefix, _ = prefix_embeddings(self.config.model, self.bb, trainable, features, self.query_task)
        out, _ = run_llm(self.config.model, self.bb, trainable, prefix, tokens, mask,
                         suffix=self._emb(trainable, tokens.shape[0]))
        return out.hidden, prefix.shape[1]

    def embed_queries(self, trainable, features, tokens, mask):
        return self.query_states(trainable, features, tokens, mask)[0][:, -1]

    def embed_targets(self, trainable, features):
        prefix, _ = prefix_embeddings(self.config.model, self.bb, trainable, features, self.target_task)
        empty = jnp.zeros((features.shape[0], 0), jnp.int32)
        out, _ = run_llm(self.config.model, self.bb, trainable, prefix, empty, empty,
                         suffix=self._emb(trainable, features.shape[0]))
        return out.hidden[:, -1]

    def loss(self, trainable: dict, batch: dict):
        tokens = batch["tokens"]
        hidden, p = self.query_states(trainable, batch["reference"], tokens, batch["mask"])
        length = tokens.shape[1]
        logits = self._head(hidden[:, p - 1:p + length - 1]).astype(jnp.float32)  # position i-1 predicts token i
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[..., None], axis=-1)[..., 0]
        labels = batch["labels"].astype(jnp.float32)
        ce = -(logp * labels).sum() / jnp.maximum(labels.sum(), 1.0)
        contrastive, sims = info_nce(hidden[:, -1], self.embed_targets(trainable, batch["target"]),
                                     trainable["log_scale"])
        total = self.config.ce_weight * ce + self.config.contrastive_weight * contrastive
        accuracy = jnp.mean(jnp.argmax(sims, axis=1) == jnp.arange(sims.shape[0]))
        return total, {"ce": ce, "contrastive": contrastive, "accuracy": accuracy}

    def generate(self, trainable, features, prompts: list[list[int]], max_new_tokens: int | None = None):
        """Greedy chains of thought (token ids, each ending at its end token) for edit-text ``prompts``."""
        model = self.config.model
        prefix, _ = prefix_embeddings(model, self.bb, trainable, jnp.asarray(features), self.query_task)
        return greedy_generate(self.bb.params, self.bb.config, prompts, max_new_tokens or self.config.max_cot_tokens,
                               soft_prompt=prefix, lora=trainable.get("lora"), lora_scale=model.lora.scale)
