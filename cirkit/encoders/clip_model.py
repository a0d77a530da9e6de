"""CLIP's text and vision transformers in Flax linen, parameter for parameter like Hugging Face ``CLIPModel``.

linen (not nnx): the encoders are pure functions of a parameter pytree, which is exactly what jit, sharding
and content-hashed stages want; parameters map one-to-one from safetensors names, with nothing mutable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from .clip_config import ClipConfig, TowerConfig

__all__ = ["ClipText", "ClipVision", "activation"]


def activation(name: str):
    if name == "quick_gelu":
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    return lambda x: jax.nn.gelu(x, approximate=True)  # gelu_new, gelu_pytorch_tanh


class Attention(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, bias):
        d, h = self.cfg.hidden_size, self.cfg.num_attention_heads
        dense = lambda name: nn.Dense(d, dtype=self.dtype, name=name)  # noqa: E731
        b, t, _ = x.shape
        q = dense("q_proj")(x).reshape(b, t, h, d // h)
        k = dense("k_proj")(x).reshape(b, t, h, d // h)
        v = dense("v_proj")(x).reshape(b, t, h, d // h)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * (d // h) ** -0.5
        if bias is not None:
            scores = scores + bias
        weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        return dense("out_proj")(out)


class Mlp(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.cfg.intermediate_size, dtype=self.dtype, name="fc1")(x)
        return nn.Dense(self.cfg.hidden_size, dtype=self.dtype, name="fc2")(activation(self.cfg.hidden_act)(x))


class Layer(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, bias):
        norm = lambda name: nn.LayerNorm(epsilon=self.cfg.layer_norm_eps, dtype=jnp.float32, name=name)  # noqa: E731
        x = x + Attention(self.cfg, self.dtype, name="self_attn")(norm("layer_norm1")(x).astype(self.dtype), bias)
        return x + Mlp(self.cfg, self.dtype, name="mlp")(norm("layer_norm2")(x).astype(self.dtype))


class Encoder(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, bias):
        for i in range(self.cfg.num_hidden_layers):
            x = Layer(self.cfg, self.dtype, name=f"layers_{i}")(x, bias)
        return x


class ClipText(nn.Module):
    """Token ids (B, T) -> projected text embeddings (B, projection_dim), pooled at the end-of-text token."""

    config: ClipConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, input_ids):
        cfg = self.config.text
        tok = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="token_embedding")(input_ids)
        pos = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size, name="position_embedding")(
            jnp.arange(input_ids.shape[1])[None])
        x = (tok + pos).astype(self.dtype)
        t = input_ids.shape[1]
        causal = jnp.where(jnp.tril(jnp.ones((t, t), bool)), 0.0, -jnp.inf)[None, None]
        x = Encoder(cfg, self.dtype, name="encoder")(x, causal)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="final_layer_norm")(x)
        if cfg.eos_token_id == 2:  # old configs: the end-of-text token has the largest id
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax((input_ids == cfg.eos_token_id).astype(jnp.int32), axis=-1)
        pooled = x[jnp.arange(x.shape[0]), eos]
        return nn.Dense(self.config.projection_dim, use_bias=False, dtype=jnp.float32, name="text_projection")(pooled)


class ClipVision(nn.Module):
    """Pixels (B, 3, H, W), normalised -> projected image embeddings (B, projection_dim), from the CLS token."""

    config: ClipConfig
    dtype: jnp.dtype = jnp.float32
    states: bool = False  # return every token's last-layer state (what an MLLM connector reads) instead

    @nn.compact
    def __call__(self, pixels):
        cfg = self.config.vision
        p, d = cfg.patch_size, cfg.hidden_size
        b, c, hgt, wid = pixels.shape
        patches = pixels.reshape(b, c, hgt // p, p, wid // p, p).transpose(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(b, (hgt // p) * (wid // p), c * p * p)
        kernel = self.param("patch_embedding", nn.initializers.normal(0.02), (d, c, p, p))
        x = jnp.einsum("bnk,dk->bnd", patches.astype(self.dtype), kernel.reshape(d, -1).astype(self.dtype))
        cls = self.param("class_embedding", nn.initializers.normal(0.02), (d,))
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (b, 1, d)), x], axis=1)
        n_pos = (cfg.image_size // p) ** 2 + 1
        x = x + nn.Embed(n_pos, d, name="position_embedding")(jnp.arange(n_pos)[None]).astype(self.dtype)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="pre_layrnorm")(x).astype(self.dtype)
        x = Encoder(cfg, self.dtype, name="encoder")(x, None)
        if self.states:
            return x
        pooled = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="post_layernorm")(x[:, 0])
        return nn.Dense(self.config.projection_dim, use_bias=False, dtype=jnp.float32, name="visual_projection")(pooled)
