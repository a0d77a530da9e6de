"""Trainable additions to a frozen causal LM: LoRA factors on chosen projections and a learned soft prompt.

The base parameters are loaded once and shared; an adapter is a small separate tree
(``{"lora": ..., "soft_prompt": ...}``). ``adapted_forward`` stops gradients at the base, so however a
trainer differentiates, only the adapter moves. LoRA adds ``(alpha / rank) * x A B`` to a projection with
``A`` drawn from the seed and ``B`` zero, so a fresh adapter leaves the model exactly as it was.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from .config import LMConfig
from .model import PROJECTIONS, LMOutput, embed_tokens, forward, positions_from_mask, prepend_soft_prompt

__all__ = ["LoraConfig", "AdapterConfig", "init_adapter", "adapted_forward", "merge_lora"]


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"lora.rank: expected a positive integer, got {self.rank!r}")
        unknown = [t for t in self.targets if t not in PROJECTIONS]
        if unknown or not self.targets:
            raise ValueError(f"lora.targets: expected names among {', '.join(PROJECTIONS)}, got {list(self.targets)}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """What is trainable on top of the frozen base: LoRA (or none) and a soft prompt of ``soft_prompt_length``."""

    lora: LoraConfig | None = LoraConfig()
    soft_prompt_length: int = 0
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.soft_prompt_length, int) or self.soft_prompt_length < 0:
            raise ValueError(f"soft_prompt_length: expected an integer >= 0, got {self.soft_prompt_length!r}")


def _in_out(config: LMConfig, name: str) -> tuple[int, int]:
    d, hd, f = config.hidden_size, config.head_dim, config.intermediate_size
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}[name]


def init_adapter(config: LMConfig, adapter: AdapterConfig, base_params=None) -> dict:
    """A fresh adapter tree from ``adapter.seed``: LoRA ``A`` uniform in ±1/sqrt(fan_in), ``B`` zero; the soft
    prompt drawn like the token embeddings (their standard deviation, from ``base_params`` when given)."""
    key = jax.random.PRNGKey(adapter.seed)
    tree: dict = {}
    if adapter.lora is not None:
        lora = {}
        for name in adapter.lora.targets:
            key, sub = jax.random.split(key)
            n_in, n_out = _in_out(config, name)
            shape = (config.num_hidden_layers, n_in, adapter.lora.rank)
            lora[name] = {"a": jax.random.uniform(sub, shape, jnp.float32, -n_in**-0.5, n_in**-0.5),
                          "b": jnp.zeros((config.num_hidden_layers, adapter.lora.rank, n_out), jnp.float32)}
        tree["lora"] = lora
    if adapter.soft_prompt_length:
        std = 0.02 if base_params is None else float(jnp.std(base_params["embed"].astype(jnp.float32)))
        key, sub = jax.random.split(key)
        tree["soft_prompt"] = std * jax.random.normal(sub, (adapter.soft_prompt_length, config.hidden_size))
    return tree


@functools.partial(jax.jit, static_argnames=("config", "adapter", "dtype", "logits", "all_hidden"))
def adapted_forward(base_params, config: LMConfig, adapter: AdapterConfig, trainable: dict, tokens, mask, *,
                    dtype=jnp.float32, logits: str = "all", all_hidden: bool = False) -> tuple[LMOutput, jax.Array]:
    """The frozen base plus ``trainable`` on left-padded ``tokens``; returns the output and the (extended) mask."""
    base = lax.stop_gradient(base_params)
    embeds = embed_tokens(base, tokens, dtype)
    if "soft_prompt" in trainable:
        embeds, mask = prepend_soft_prompt(embeds, mask, trainable["soft_prompt"])
    scale = adapter.lora.scale if adapter.lora is not None else 1.0
    out = forward(base, config, embeds, positions_from_mask(mask), mask, lora=trainable.get("lora"),
                  lora_scale=scale, logits=logits, all_hidden=all_hidden)
    return out, mask


def merge_lora(base_params, adapter: AdapterConfig, trainable: dict) -> dict:
    """Base parameters with ``scale * A B`` folded into the kernels (for export, or to check the adapter)."""
    layers = dict(base_params["layers"])
    for name, factors in trainable.get("lora", {}).items():
        delta = jnp.einsum("lir,lro->lio", factors["a"], factors["b"]) * adapter.lora.scale
        layers[name] = {**layers[name], "kernel": layers[name]["kernel"] + delta.astype(layers[name]["kernel"].dtype)}
    return {**base_params, "layers": layers}
