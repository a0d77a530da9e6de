"""The instance-specific soft prompt of CIR-LVLM: a pool of ``M`` learnable prompts (each ``Lp`` embeddings) with
learnable keys; an input's query feature picks the ``K`` prompts whose keys are most similar (cosine), and
their embeddings are concatenated (``K * Lp`` positions).

The choice (top-K) has no gradient, so, as in prompt-pool learning, the chosen keys are pulled towards the
query feature by a surrogate term (``1 - cosine``) that the loss adds with its own weight. The query feature
is the mean of the frozen image features, so which prompts are chosen does not drift with the trainable parts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["init_pool", "select_prompts"]


def init_pool(key, size: int, length: int, feature_dim: int, lm_dim: int, embed_std: float) -> dict:
    k1, k2 = jax.random.split(key)
    return {"keys": jax.random.uniform(k1, (size, feature_dim), jnp.float32, -1.0, 1.0),
            "prompts": embed_std * jax.random.normal(k2, (size, length, lm_dim), jnp.float32)}


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def select_prompts(pool: dict, features, top_k: int):
    """Image features ``[batch, tokens, dim]`` -> (prompts ``[batch, K * Lp, lm_dim]``, surrogate key loss)."""
    query = _unit(jax.lax.stop_gradient(features.astype(jnp.float32)).mean(axis=1))
    similarity = query @ _unit(pool["keys"]).T  # [batch, M]
    chosen_sim, chosen = jax.lax.top_k(similarity, top_k)
    prompts = pool["prompts"][chosen]  # [batch, K, Lp, lm_dim]
    b, k, lp, d = prompts.shape
    return prompts.reshape(b, k * lp, d), jnp.mean(1.0 - chosen_sim)
