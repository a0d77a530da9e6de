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
import functools

import jax
import jax.numpy as jnp

from .. import config_checks as checks
from ..lm.adapters import AdapterConfig, LoraConfig, init_adapter
from ..lm.config import LMConfig, read_lm_config
from ..lm.model import embed_tokens, forward, positions_from_mask
from ..lm.vlm_folders import read_lm_tensors
from ..lm.weights import params_from_tensors
from .connector import connect, init_connector
from .pooling import POOLINGS, init_pooling, pool
from .prompt_pool import init_pool, select_prompts

__all__ = ["PromptPoolConfig", "MLLMConfig", "PromptTexts", "Backbone", "backbone", "frozen_llm", "init_trainable",
           "trainable_mask", "prefix_embeddings", "run_llm", "pooled"]


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
class PromptTexts:
    """The task-level instructions (tokenised with the LLM's tokenizer) and the longest edit text kept."""

    query_task: str = "Apply the requested change to the reference image and describe the image that results:"
    target_task: str = "Describe this image:"
    max_text_tokens: int = 32

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "max_text_tokens")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The frozen LLM as the path uses it (hashable: tasks built on it are static jit arguments): its folder
    and content digest, its config cut to ``llm_layers``, and the width of the frozen image features."""

    llm: str
    llm_digest: str
    lm: LMConfig
    vision_dim: int


def backbone(llm: str, llm_digest: str, config: MLLMConfig, vision_dim: int) -> Backbone:
    """Keep the first ``llm_layers`` layers (all when 0 or more than there are)."""
    lm = read_lm_config(llm)
    n = lm.num_hidden_layers if not config.llm_layers else min(config.llm_layers, lm.num_hidden_layers)
    return Backbone(llm, llm_digest, dataclasses.replace(lm, num_hidden_layers=n), vision_dim)


@functools.lru_cache(maxsize=2)
def frozen_llm(bb: Backbone) -> dict:
    """The LLM's parameters of the backbone's layers only, read once per process (the safetensors are memory
    mapped, so the layers beyond ``llm_layers`` are never read)."""
    return params_from_tensors(bb.lm, read_lm_tensors(bb.llm, bb.lm.num_hidden_layers), bb.llm)


def init_trainable(config: MLLMConfig, bb: Backbone, key=None) -> dict:
    """The frozen LLM (under ``llm``) and a fresh trainable tree (LoRA B at zero: the LLM starts as loaded)."""
    llm = frozen_llm(bb)
    key = jax.random.PRNGKey(config.seed) if key is None else key
    k_conn, k_pool, k_lora = jax.random.split(key, 3)
    d, std = bb.lm.hidden_size, float(jnp.std(llm["embed"].astype(jnp.float32)))
    tree = {"llm": llm,
            "connector": init_connector(k_conn, config.n_queries, bb.vision_dim, d, config.connector_heads, std),
            "pooling": init_pooling(config.pooling, d)}
    if config.instance_prompt:
        tree["pool"] = init_pool(k_pool, config.pool.size, config.pool.length, bb.vision_dim, d, std)
    if config.use_lora:
        seed = int(jax.random.randint(k_lora, (), 0, 2**30))
        tree["lora"] = init_adapter(bb.lm, AdapterConfig(config.lora, 0, seed))["lora"]
    if not tree["pooling"]:
        del tree["pooling"]
    return tree


def trainable_mask(params: dict) -> dict:
    """Everything but the frozen LLM trains."""
    return {k: jax.tree.map(lambda _, trains=(k != "llm"): trains, v) for k, v in params.items()}


def prefix_embeddings(config: MLLMConfig, bb: Backbone, params: dict, features, task_ids):
    """[visual prompt, task prompt, instance prompt] ``[batch, P, hidden]`` and the pool's surrogate key loss.

    ``task_ids`` is one token sequence shared by the batch (ignored when ``config.task_prompt`` is off)."""
    parts = [connect(params["connector"], features, config.connector_heads)]
    b = parts[0].shape[0]
    if config.task_prompt and task_ids:
        task = embed_tokens(jax.lax.stop_gradient(params["llm"]), jnp.asarray(task_ids, jnp.int32)[None], jnp.float32)
        parts.append(jnp.broadcast_to(task, (b, *task.shape[1:])))
    key_loss = jnp.float32(0.0)
    if config.instance_prompt:
        prompts, key_loss = select_prompts(params["pool"], features, config.pool.top_k)
        parts.append(prompts)
    return jnp.concatenate(parts, axis=1), key_loss


def run_llm(config: MLLMConfig, bb: Backbone, params: dict, prefix, tokens, token_mask, suffix=None,
            logits: str = "none"):
    """The LLM over [prefix, left-padded tokens, optional suffix embeddings]; returns (output, mask)."""
    lm_params = jax.lax.stop_gradient(params["llm"])
    parts = [prefix, embed_tokens(lm_params, tokens, jnp.float32)]
    masks = [jnp.ones(prefix.shape[:2], jnp.int32), token_mask.astype(jnp.int32)]
    if suffix is not None:
        parts.append(suffix)
        masks.append(jnp.ones(suffix.shape[:2], jnp.int32))
    embeds, mask = jnp.concatenate(parts, axis=1), jnp.concatenate(masks, axis=1)
    out = forward(lm_params, bb.lm, embeds, positions_from_mask(mask), mask, lora=params.get("lora"),
                  lora_scale=config.lora.scale, logits=logits)
    return out, mask


def pooled(config: MLLMConfig, params: dict, hidden, mask):
    return pool(config.pooling, params.get("pooling", {}), hidden, mask)
