"""The connector: learnable query embeddings cross-attend to frozen image features and become a short
"sentence-level" visual prompt in the LLM's embedding space (a one-layer resampler, as CIR-LVLM describes).

Parameters are a plain dict (``queries``, ``q``/``k``/``v``/``out`` kernels), so jit, content hashing and
safetensors export treat them like any other tree. The output is scaled to the LLM's embedding norm at
initialisation so that the visual prompt neither drowns nor vanishes among token embeddings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["init_connector", "connect"]


def init_connector(key, n_queries: int, vision_dim: int, lm_dim: int, heads: int, embed_std: float) -> dict:
    if vision_dim % heads:
        raise ValueError(f"connector.heads: {heads} does not divide the vision width {vision_dim}")
    keys = jax.random.split(key, 5)
    dense = lambda k, n_in, n_out, std: std * jax.random.normal(k, (n_in, n_out), jnp.float32)  # noqa: E731
    return {"queries": 0.02 * jax.random.normal(keys[0], (n_queries, vision_dim), jnp.float32),
            "q": dense(keys[1], vision_dim, vision_dim, vision_dim**-0.5),
            "k": dense(keys[2], vision_dim, vision_dim, vision_dim**-0.5),
            "v": dense(keys[3], vision_dim, vision_dim, vision_dim**-0.5),
            "out": dense(keys[4], vision_dim, lm_dim, embed_std * vision_dim**-0.5),
            "out_bias": jnp.zeros((lm_dim,), jnp.float32)}


def _layer_norm(x, eps: float = 1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)


def connect(params: dict, features, heads: int):
    """Image features ``[batch, tokens, vision_dim]`` -> visual prompt ``[batch, n_queries, lm_dim]``."""
    feats = _layer_norm(features.astype(jnp.float32))
    b, n, d = feats.shape
    hd = d // heads
    q = (params["queries"] @ params["q"]).reshape(-1, heads, hd)
    k = (feats @ params["k"]).reshape(b, n, heads, hd)
    v = (feats @ params["v"]).reshape(b, n, heads, hd)
    weights = jax.nn.softmax(jnp.einsum("qhd,bnhd->bhqn", q, k) * hd**-0.5, axis=-1)
    attended = jnp.einsum("bhqn,bnhd->bqhd", weights, v).reshape(b, -1, d)
    return _layer_norm(params["queries"] + attended) @ params["out"] + params["out_bias"]
