"""The MLLM path shared by CIR-LVLM and CIR-CoT: frozen image features -> connector -> [visual prompt, task
prompt, instance prompt, text] as input embeddings of cirkit's causal LM (a prefix of its layers, optionally
with LoRA) -> final hidden states.

The prefix (visual prompt, task prompt embeddings, chosen instance prompts) has the same length for every
row; the text after it is left-padded, so the last position is always real (what ``last`` pooling and the
embedding token read) and positions count real tokens only. Everything trainable lives in one dict tree
(``connector``, ``pool``, ``lora``, ``pooling``, plus what a method adds); the LLM and vision weights stay frozen.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .. import config_checks as checks
from ..lm.adapters import AdapterConfig, LoraConfig, init_adapter
from ..lm.config import LMConfig
from ..lm.model import embed_tokens, forward, positions_from_mask
from ..lm.weights import LanguageModel
from .connector import connect, init_connector
from .pooling import POOLINGS, init_pooling, pool
from .prompt_pool import init_pool, select_prompts

__all__ = ["PromptPoolConfig", "MLLMConfig", "Backbone", "backbone", "init_trainable", "prefix_embeddings",
           "run_llm", "pooled"]


@dataclasses.dataclass(frozen=True)
class PromptPoolConfig:
    """The instance prompt pool: ``size`` prompts (M) of ``length`` (Lp), ``top_k`` (K) chosen per input.
    CIR-LVLM's best on FashionIQ: M = 45 and Lp x K = 40 (here 8 x 5)."""

    size: int = 45
    length: int = 8
    top_k: int = 5
    key_weight: float = 0.1  # weight of the surrogate loss pulling chosen keys towards their query feature

    def __post_init__(self) -> None:
        for name in ("size", "length", "top_k"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                checks.fail(self, name, "a positive integer", getattr(self, name))
        if self.top_k > self.size:
            checks.fail(self, "top_k", f"at most size ({self.size})", self.top_k)


@dataclasses.dataclass(frozen=True)
class MLLMConfig:
    """What is built around the frozen LLM and vision tower (paper values as defaults where known)."""

    n_queries: int = 8  # length of the visual prompt (the connector's learnable queries)
    connector_heads: int = 1
    llm_layers: int = 0  # use only the first N layers of the LLM (0: all)
    lora: LoraConfig = LoraConfig()
    use_lora: bool = True  # LoRA on the LLM (off: only the connector, prompts and pooling train)
    task_prompt: bool = True
    instance_prompt: bool = True
    pool: PromptPoolConfig = PromptPoolConfig()
    pooling: str = "weighted_mean"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            checks.fail(self, "pooling", "one of " + ", ".join(POOLINGS), self.pooling)
        if not isinstance(self.llm_layers, int) or self.llm_layers < 0:
            checks.fail(self, "llm_layers", "an integer >= 0 (0: every layer)", self.llm_layers)
        if not isinstance(self.n_queries, int) or self.n_queries < 1:
            checks.fail(self, "n_queries", "a positive integer", self.n_queries)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The frozen LLM as the path uses it: its config cut to ``llm_layers`` and the matching parameters."""

    config: LMConfig
    params: dict = dataclasses.field(repr=False)
    vision_dim: int = 0

    @property
    def embed_std(self) -> float:
        return float(jnp.std(self.params["embed"].astype(jnp.float32)))


def backbone(lm: LanguageModel, config: MLLMConfig, vision_dim: int) -> Backbone:
    """Keep the first ``llm_layers`` layers (all when 0 or more than there are)."""
    n = lm.config.num_hidden_layers if not config.llm_layers else min(config.llm_layers, lm.config.num_hidden_layers)
    layers = jax.tree.map(lambda x: x[:n], lm.params["layers"])
    return Backbone(dataclasses.replace(lm.config, num_hidden_layers=n), {**lm.params, "layers": layers}, vision_dim)


def init_trainable(config: MLLMConfig, bb: Backbone) -> dict:
    """A fresh trainable tree from ``config.seed`` (LoRA B at zero: the LLM starts exactly as loaded)."""
    key = jax.random.PRNGKey(config.seed)
    k_conn, k_pool = jax.random.split(key)
    d, std = bb.config.hidden_size, bb.embed_std
    tree = {"connector": init_connector(k_conn, config.n_queries, bb.vision_dim, d, config.connector_heads, std),
            "pooling": init_pooling(config.pooling, d)}
    if config.instance_prompt:
        tree["pool"] = init_pool(k_pool, config.pool.size, config.pool.length, bb.vision_dim, d, std)
    if config.use_lora:
        tree["lora"] = init_adapter(bb.config, AdapterConfig(config.lora, 0, config.seed + 1))["lora"]
    return tree


def prefix_embeddings(config: MLLMConfig, bb: Backbone, trainable: dict, features, task_ids):
    """[visual prompt, task prompt, instance prompt] ``[batch, P, hidden]`` and the pool's surrogate key loss.

    ``task_ids`` is one token sequence shared by the batch (ignored when ``config.task_prompt`` is off)."""
    parts = [connect(trainable["connector"], features, config.connector_heads)]
    b = parts[0].shape[0]
    if config.task_prompt and task_ids is not None and len(task_ids):
        task = embed_tokens(bb.params, jnp.asarray(task_ids)[None], jnp.float32)
        parts.append(jnp.broadcast_to(task, (b, *task.shape[1:])))
    key_loss = jnp.float32(0.0)
    if config.instance_prompt:
        prompts, key_loss = select_prompts(trainable["pool"], features, config.pool.top_k)
        parts.append(prompts)
    return jnp.concatenate(parts, axis=1), key_loss


def run_llm(config: MLLMConfig, bb: Backbone, trainable: dict, prefix, tokens, token_mask, suffix=None,
            logits: str = "none"):
    """The LLM over [prefix, left-padded tokens, optional suffix embeddings]; returns (output, mask)."""
    lm_params = jax.lax.stop_gradient(bb.params)
    parts = [prefix, embed_tokens(lm_params, tokens, jnp.float32)]
    masks = [jnp.ones(prefix.shape[:2], jnp.int32), token_mask.astype(jnp.int32)]
    if suffix is not None:
        parts.append(suffix)
        masks.append(jnp.ones(suffix.shape[:2], jnp.int32))
    embeds, mask = jnp.concatenate(parts, axis=1), jnp.concatenate(masks, axis=1)
    out = forward(lm_params, bb.config, embeds, positions_from_mask(mask), mask, lora=trainable.get("lora"),
                  lora_scale=config.lora.scale, logits=logits)
    return out, mask


def pooled(config: MLLMConfig, trainable: dict, hidden, mask):
    return pool(config.pooling, trainable.get("pooling", {}), hidden, mask)
