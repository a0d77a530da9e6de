"""The decoder of the Llama and Qwen2 families as a pure function of a parameter pytree.

RMSNorm, rotary embeddings, grouped-query attention, a SwiGLU MLP, tied or untied output embeddings and
optional q/k/v (Qwen2), output and MLP biases (Llama's ``attention_bias``/``mlp_bias``). The layers are
stacked along a leading axis and run by ``lax.scan``, so a 30-layer model compiles as one layer. An optional
KV cache (one array per K and V for all layers) is written in place at ``cache_index``; LoRA factors, when
given, add ``scale * x A B`` to the projections they name. No Flax module: parameters map one-to-one from
safetensors names (see ``weights.py``), which is what jit, LoRA splitting and content hashing want.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .config import LMConfig
from .rope import rotary_tables, rotate

__all__ = ["LMOutput", "forward", "embed_tokens", "empty_cache", "positions_from_mask", "prepend_soft_prompt",
           "PROJECTIONS"]

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_NEG = -1e30  # a finite "minus infinity": fully masked rows (left padding) stay finite instead of NaN


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LMOutput:
    logits: Any  # [batch, time, vocab] (or [batch, vocab] with logits="last"), None with logits="none"
    hidden: Any  # [batch, time, hidden]: the final normed hidden states (what pooling reads)
    layers: Any  # [layers + 1, batch, time, hidden]: embeddings, then each layer's output (with all_hidden)
    cache: Any  # {"k", "v"}: [layers, batch, cache_len, kv_heads, head_dim], or None


def embed_tokens(params, tokens, dtype=jnp.float32):
    """Token ids ``[batch, time]`` -> input embeddings ``[batch, time, hidden]``."""
    return jnp.take(params["embed"], tokens, axis=0).astype(dtype)


def positions_from_mask(mask):
    """Position of each real token counted from the sequence's first real token; 0 on padding."""
    return jnp.where(mask > 0, jnp.cumsum(mask, axis=1) - 1, 0)


def prepend_soft_prompt(embeds, mask, soft_prompt):
    """Put learned embeddings ``[length, hidden]`` before every sequence; positions follow the extended mask
    (left padding then sits between prompt and tokens, where the mask hides it)."""
    prefix = jnp.broadcast_to(soft_prompt.astype(embeds.dtype), (embeds.shape[0], *soft_prompt.shape[-2:]))
    return (jnp.concatenate([prefix, embeds], axis=1),
            jnp.concatenate([jnp.ones(prefix.shape[:2], mask.dtype), mask], axis=1))


def empty_cache(config: LMConfig, batch: int, length: int, dtype=jnp.float32):
    shape = (config.num_hidden_layers, batch, length, config.num_key_value_heads, config.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def rms_norm(x, weight, eps):
    """Normalise in float32, cast back, then scale (the order the reference implementation uses)."""
    x32 = x.astype(jnp.float32)
    normed = x32 * lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * normed.astype(x.dtype)


def _dense(x, p, lora, name, scale):
    y = x @ p[name]["kernel"].astype(x.dtype)
    if "bias" in p[name]:
        y = y + p[name]["bias"].astype(x.dtype)
    if lora is not None and name in lora:
        y = y + ((x @ lora[name]["a"].astype(x.dtype)) @ lora[name]["b"].astype(x.dtype)) * scale
    return y


def _qkv(config: LMConfig, x, p, lora, scale, cos, sin):
    b, t, _ = x.shape
    h, kvh, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    q = rotate(_dense(x, p, lora, "q_proj", scale).reshape(b, t, h, hd), cos, sin)
    k = rotate(_dense(x, p, lora, "k_proj", scale).reshape(b, t, kvh, hd), cos, sin)
    return q, k, _dense(x, p, lora, "v_proj", scale).reshape(b, t, kvh, hd)


def _attend(config: LMConfig, q, k, v, bias):
    """Grouped-query attention: each key/value head serves ``groups`` query heads; softmax in float32."""
    b, t, h, hd = q.shape
    q = q.reshape(b, t, config.num_key_value_heads, config.groups, hd)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k).astype(jnp.float32) * hd**-0.5
    weights = jax.nn.softmax(scores + bias[:, None, None], axis=-1).astype(q.dtype)
    return jnp.einsum("bkgts,bskd->btkgd", weights, v).reshape(b, t, h * hd)


def _mlp(x, p, lora, scale):
    gate = _dense(x, p, lora, "gate_proj", scale)
    return _dense(jax.nn.silu(gate) * _dense(x, p, lora, "up_proj", scale), p, lora, "down_proj", scale)


@functools.partial(jax.jit, static_argnames=("config", "lora_scale", "logits", "all_hidden"))
def forward(params, config: LMConfig, embeds, positions, key_mask, *, cache=None, cache_index=0, lora=None,
            lora_scale: float = 1.0, logits: str = "all", all_hidden: bool = False) -> LMOutput:
    """Run the decoder on ``embeds`` ``[batch, time, hidden]`` at integer ``positions`` ``[batch, time]``.

    ``key_mask`` ``[batch, keys]`` is 1 for real tokens (0 for padding); keys are the ``time`` inputs, or with a
    ``cache`` every cache slot, the inputs being written at slots ``cache_index ...``. Attention is causal by
    slot. ``logits``: "all", "last" (the last slot only) or "none".
    """
    dtype = embeds.dtype
    b, t, _ = embeds.shape
    keys = key_mask.shape[1]
    query_slots = cache_index + jnp.arange(t)
    visible = (jnp.arange(keys)[None, :] <= query_slots[:, None])[None] & (key_mask[:, None, :] > 0)
    bias = jnp.where(visible, 0.0, _NEG).astype(jnp.float32)
    seq_len = jnp.max(positions) + 1 if config.rope.kind == "dynamic" else None
    cos, sin = rotary_tables(config, positions, dtype, seq_len)
    eps = config.rms_norm_eps

    def layer(carry, xs):
        x, ck, cv = carry
        p, lp, i = xs
        q, k, v = _qkv(config, rms_norm(x, p["input_norm"], eps), p, lp, lora_scale, cos, sin)
        if ck is not None:  # write this call's keys/values at their slots, attend over the whole cache
            ck = lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), (i, 0, cache_index, 0, 0))
            cv = lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), (i, 0, cache_index, 0, 0))
            k = lax.dynamic_index_in_dim(ck, i, keepdims=False).astype(dtype)
            v = lax.dynamic_index_in_dim(cv, i, keepdims=False).astype(dtype)
        x = x + _dense(_attend(config, q, k, v, bias), p, lp, "o_proj", lora_scale)
        x = x + _mlp(rms_norm(x, p["post_norm"], eps), p, lp, lora_scale)
        return (x, ck, cv), (x if all_hidden else None)

    ck, cv = (None, None) if cache is None else (cache["k"], cache["v"])
    xs = (params["layers"], lora, jnp.arange(config.num_hidden_layers))
    (x, ck, cv), per_layer = lax.scan(layer, (embeds, ck, cv), xs)
    hidden = rms_norm(x, params["norm"], eps)
    out = hidden[:, -1] if logits == "last" else hidden
    head = params["embed"].T if config.tie_word_embeddings else params["lm_head"]
    result = None if logits == "none" else (out @ head.astype(dtype))
    layers = jnp.concatenate([embeds[None], per_layer], axis=0) if all_hidden else None
    return LMOutput(result, hidden, layers, None if cache is None else {"k": ck, "v": cv})
