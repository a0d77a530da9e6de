"""CLIP's text and vision transformers in Flax linen, parameter for parameter like Hugging Face ``CLIPModel``.

linen (not nnx): the encoders are pure functions of a parameter pytree, which is exactly what jit, sharding
and content-hashed stages want; parameters map one-to-one from safetensors names, with nothing mutable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from .clip_config import ClipConfig, TowerConfig
from .mixed_matmul import dense_dot_general, einsum

__all__ = ["ClipText", "ClipVision", "activation", "cut_patches"]


def activation(name: str):
    if name == "quick_gelu":
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    return lambda x: jax.nn.gelu(x, approximate=True)  # gelu_new, gelu_pytorch_tanh


def cut_patches(pixels, patch_size: int):
    """Images (B, H, W, C) -> patches (B, H/p * W/p, p*p*C), each patch's values in (row, column, channel)
    order (NumPy or JAX arrays): moves whole rows of p*C values, so a data loader can do it on the host."""
    b, hgt, wid, c = pixels.shape
    p = patch_size
    rows = pixels.reshape(b, hgt // p, p, wid // p, p * c).transpose(0, 1, 3, 2, 4)
    return rows.reshape(b, (hgt // p) * (wid // p), p * p * c)


class HeadDense(nn.Module):
    """``nn.Dense``'s parameters (kernel (in, out), bias (out,), same initialisers) applied per head: (B, T, in)
    -> (B, heads, T, out / heads), or with ``merge``, (B, heads, T, in / heads) -> (B, T, out). Projecting
    straight into the head-major layout leaves XLA no transposes around the attention products."""

    features: int
    heads: int
    dtype: jnp.dtype
    merge: bool = False
    matmul: str = "float32"

    @nn.compact
    def __call__(self, x):
        h, f = self.heads, self.features
        fan_in = x.shape[1] * x.shape[-1] if self.merge else x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (fan_in, f)).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (f,)).astype(self.dtype)
        if self.merge:
            return einsum("bhtk,hkf->btf", x, kernel.reshape(h, fan_in // h, f), self.matmul, self.dtype) + bias
        x = einsum("btd,dhk->bhtk", x, kernel.reshape(fan_in, h, f // h), self.matmul, self.dtype)
        return x + bias.reshape(h, 1, f // h)


class Attention(nn.Module):
    """Self-attention. ``heads_major``: the same map with the projections laid out per head (:class:`HeadDense`;
    equal up to float rounding, ~9 % less CPU time for a training step of the demo's CLIP); the default keeps
    the layout (and so the exact values) that the all-tokens path reads. ``matmul``: the products' operand
    precision (:mod:`.mixed_matmul`)."""

    cfg: TowerConfig
    dtype: jnp.dtype
    heads_major: bool = False
    matmul: str = "float32"

    @nn.compact
    def __call__(self, x, bias, queries=None):
        """Self-attention of ``x`` (B, T, D); with ``queries`` (B, Q, D), only those rows ask (keys and values
        are still all of ``x``), so a pooled output skips the rows it never reads."""
        d, h = self.cfg.hidden_size, self.cfg.num_attention_heads
        b, t, _ = x.shape
        queries = x if queries is None else queries
        if self.heads_major:
            heads = lambda name: HeadDense(d, h, self.dtype, matmul=self.matmul, name=name)  # noqa: E731
            q, k, v = heads("q_proj")(queries), heads("k_proj")(x), heads("v_proj")(x)
            scores = einsum("bhqd,bhkd->bhqk", q, k, self.matmul).astype(jnp.float32) * (d // h) ** -0.5
        else:
            dot = dense_dot_general(self.matmul)
            dense = lambda name: nn.Dense(d, dtype=self.dtype, dot_general=dot, name=name)  # noqa: E731
            q = dense("q_proj")(queries).reshape(b, queries.shape[1], h, d // h)
            k = dense("k_proj")(x).reshape(b, t, h, d // h)
            v = dense("v_proj")(x).reshape(b, t, h, d // h)
            scores = einsum("bqhd,bkhd->bhqk", q, k, self.matmul).astype(jnp.float32) * (d // h) ** -0.5
        if bias is not None:
            scores = scores + bias
        weights = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        if self.heads_major:
            merge = HeadDense(d, h, self.dtype, merge=True, matmul=self.matmul, name="out_proj")
            return merge(einsum("bhqk,bhkd->bhqd", weights, v, self.matmul))
        out = einsum("bhqk,bkhd->bqhd", weights, v, self.matmul).reshape(b, queries.shape[1], d)
        return dense("out_proj")(out)


class Mlp(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype
    matmul: str = "float32"

    @nn.compact
    def __call__(self, x):
        dot = dense_dot_general(self.matmul)
        x = nn.Dense(self.cfg.intermediate_size, dtype=self.dtype, dot_general=dot, name="fc1")(x)
        fc2 = nn.Dense(self.cfg.hidden_size, dtype=self.dtype, dot_general=dot, name="fc2")
        return fc2(activation(self.cfg.hidden_act)(x))


class Layer(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype
    heads_major: bool = False
    matmul: str = "float32"

    @nn.compact
    def __call__(self, x, bias, queries=None):
        """The layer's output at every row of ``x``, or (``queries``: rows of ``x`` (B, Q, D)) at those only."""
        norm = lambda name: nn.LayerNorm(epsilon=self.cfg.layer_norm_eps, dtype=jnp.float32, name=name)  # noqa: E731
        norm1 = norm("layer_norm1")
        asked = None if queries is None else norm1(queries).astype(self.dtype)
        attention = Attention(self.cfg, self.dtype, self.heads_major, self.matmul, name="self_attn")
        x = (x if queries is None else queries) + attention(norm1(x).astype(self.dtype), bias, asked)
        return x + Mlp(self.cfg, self.dtype, self.matmul, name="mlp")(norm("layer_norm2")(x).astype(self.dtype))


class Encoder(nn.Module):
    cfg: TowerConfig
    dtype: jnp.dtype
    matmul: str = "float32"

    @nn.compact
    def __call__(self, x, bias, pool=None):
        """Every row's last state; or, with ``pool(x) -> (rows (B, Q, D), their bias)``, the last layer runs
        for those rows only (a pooled embedding reads one row: the rest of the last layer is dead work), and
        attention is laid out per head (:class:`Attention`)."""
        n, heads_major = self.cfg.num_hidden_layers, pool is not None
        for i in range(n):
            if pool is not None and i == n - 1:
                queries, query_bias = pool(x)
                return Layer(self.cfg, self.dtype, heads_major, self.matmul, name=f"layers_{i}")(x, query_bias, queries)
            x = Layer(self.cfg, self.dtype, heads_major, self.matmul, name=f"layers_{i}")(x, bias)
        return x if pool is None else pool(x)[0]


class ClipText(nn.Module):
    """Token ids (B, T) -> projected text embeddings (B, projection_dim), pooled at the end-of-text token.
    ``matmul="bfloat16"``: the transformer's products take bfloat16 operands (:mod:`.mixed_matmul`; training)."""

    config: ClipConfig
    dtype: jnp.dtype = jnp.float32
    matmul: str = "float32"

    @nn.compact
    def __call__(self, input_ids):
        cfg = self.config.text
        tok = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="token_embedding")(input_ids)
        pos = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size, name="position_embedding")(
            jnp.arange(input_ids.shape[1])[None]
        )
        x = (tok + pos).astype(self.dtype)
        t = input_ids.shape[1]
        causal = jnp.where(jnp.tril(jnp.ones((t, t), bool)), 0.0, -jnp.inf)[None, None]
        if cfg.eos_token_id == 2:  # old configs: the end-of-text token has the largest id
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax((input_ids == cfg.eos_token_id).astype(jnp.int32), axis=-1)

        def at_eos(h):  # the end-of-text row, which sees the positions up to it (causal)
            sees = jnp.where(jnp.arange(t)[None] <= eos[:, None], 0.0, -jnp.inf)[:, None, None]
            return h[jnp.arange(h.shape[0]), eos][:, None], sees

        x = Encoder(cfg, self.dtype, self.matmul, name="encoder")(x, causal, at_eos)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="final_layer_norm")(x)
        pooled = x[:, 0]
        return nn.Dense(self.config.projection_dim, use_bias=False, dtype=jnp.float32, name="text_projection")(pooled)


class ClipVision(nn.Module):
    """Pixels (B, 3, H, W), normalised -> projected image embeddings (B, projection_dim), from the CLS token.
    With ``patches``, the input is instead pixels already cut by :func:`cut_patches`; with ``normalise``
    ((mean, std) per channel), raw 0-255 values whose normalisation is folded into the patch embedding (the
    same linear map, applied to the small kernel instead of every pixel). ``matmul``: as :class:`ClipText`'s."""

    config: ClipConfig
    dtype: jnp.dtype = jnp.float32
    states: bool = False  # return every token's last-layer state (what an MLLM connector reads) instead
    patches: bool = False
    normalise: tuple | None = None
    matmul: str = "float32"

    @nn.compact
    def __call__(self, pixels):
        cfg = self.config.vision
        p, d = cfg.patch_size, cfg.hidden_size
        c = pixels.shape[-1] // (p * p) if self.patches else pixels.shape[1]
        kernel = self.param("patch_embedding", nn.initializers.normal(0.02), (d, c, p, p))
        if self.patches:  # values in (row, column, channel) order
            patches, b = pixels, pixels.shape[0]
            kernel = kernel.transpose(0, 2, 3, 1)
        else:
            b, _, hgt, wid = pixels.shape
            patches = pixels.reshape(b, c, hgt // p, p, wid // p, p).transpose(0, 2, 4, 1, 3, 5)
            patches = patches.reshape(b, (hgt // p) * (wid // p), c * p * p)
        shift = None
        if self.normalise is not None:  # W . ((x / 255 - mean) / std) = (W / (255 std)) . x - W . (mean / std)
            mean, std = (jnp.asarray(v, jnp.float32) for v in self.normalise)
            per_channel = (None, None, None, slice(None)) if self.patches else (None, slice(None), None, None)
            shift = -(kernel * (mean / std)[per_channel]).sum((1, 2, 3))
            kernel = kernel / (255 * std)[per_channel]
        x = einsum("bnk,dk->bnd", patches, kernel.reshape(d, -1), self.matmul, self.dtype)
        if shift is not None:
            x = x + shift.astype(self.dtype)
        cls = self.param("class_embedding", nn.initializers.normal(0.02), (d,))
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (b, 1, d)), x], axis=1)
        n_pos = (cfg.image_size // p) ** 2 + 1
        x = x + nn.Embed(n_pos, d, name="position_embedding")(jnp.arange(n_pos)[None]).astype(self.dtype)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="pre_layrnorm")(x).astype(self.dtype)
        if self.states:
            return Encoder(cfg, self.dtype, self.matmul, name="encoder")(x, None)
        x = Encoder(cfg, self.dtype, self.matmul, name="encoder")(x, None, lambda h: (h[:, :1], None))  # CLS row
        pooled = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="post_layernorm")(x[:, 0])
        return nn.Dense(self.config.projection_dim, use_bias=False, dtype=jnp.float32, name="visual_projection")(pooled)
