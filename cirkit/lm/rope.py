"""Rotary position embeddings with the Llama family's frequency scalings (default, linear, dynamic NTK, llama3).

The inverse frequencies follow the published formulas; ``dynamic`` rescales the base once the longest
position seen exceeds the trained context, so it takes that length as a traced argument.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from .config import LMConfig

__all__ = ["inverse_frequencies", "rotary_tables", "rotate"]


def _base_frequencies(theta, dim: int):
    return 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))


def _llama3(inv_freq: np.ndarray, rope) -> np.ndarray:
    """Long wavelengths divided by ``factor``, short ones kept, the band between interpolated smoothly."""
    low_wavelen = rope.original_max_position_embeddings / rope.low_freq_factor
    high_wavelen = rope.original_max_position_embeddings / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq)
    smooth = (rope.original_max_position_embeddings / wavelen - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor)
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def inverse_frequencies(config: LMConfig, seq_len=None):
    """``[head_dim / 2]`` float32 inverse frequencies; ``seq_len`` (max position + 1) matters only for dynamic."""
    rope, dim = config.rope, config.head_dim
    if rope.kind == "dynamic":
        length = jnp.maximum(jnp.asarray(config.max_position_embeddings if seq_len is None else seq_len, jnp.float32),
                             config.max_position_embeddings)
        base = rope.theta * ((rope.factor * length / config.max_position_embeddings) - (rope.factor - 1)) ** (
            dim / (dim - 2))
        exponents = jnp.arange(0, dim, 2, dtype=jnp.float32) / dim
        return 1.0 / (base ** exponents)
    inv_freq = _base_frequencies(rope.theta, dim)
    if rope.kind == "linear":
        inv_freq = inv_freq / rope.factor
    elif rope.kind == "llama3":
        inv_freq = _llama3(inv_freq, rope)
    return jnp.asarray(inv_freq, jnp.float32)


def rotary_tables(config: LMConfig, positions, dtype, seq_len=None):
    """cos and sin tables ``[batch, time, head_dim]`` for integer ``positions`` ``[batch, time]``."""
    freqs = positions[..., None].astype(jnp.float32) * inverse_frequencies(config, seq_len)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def rotate(x, cos, sin):
    """Apply the rotation to ``x`` ``[batch, time, heads, head_dim]`` (halves rotated, as in the HF layout)."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]
