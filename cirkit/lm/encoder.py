"""cirkit's causal LM as a text encoder: the final hidden states pooled over each text's real tokens.

``mean`` averages the real tokens; ``last`` takes the last one (what a causal model has read everything by).
Images are outside a text-only LM, so ``encode_files`` refuses with a clear error. With several devices
each batch is split over them (parameters replicated once at load).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .generate import pad_left
from .model import embed_tokens, forward, positions_from_mask
from .sharding import placement
from .weights import load_lm

__all__ = ["LMTextEncoder", "pool"]

POOLINGS = ("mean", "last")


def pool(hidden, mask, pooling: str):
    """``[batch, time, hidden]`` -> ``[batch, hidden]`` over the real (mask 1) tokens of left-padded rows."""
    if pooling == "last":
        return hidden[:, -1]
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1)


class LMTextEncoder:
    def __init__(self, directory: str, dtype: str = "float32", pooling: str = "mean", batch_size: int = 8,
                 devices=None) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        from transformers import AutoTokenizer

        self.lm = load_lm(directory, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.dtype, self.pooling, self.batch_size = jnp.dtype(dtype), pooling, batch_size
        self.place = placement(devices)
        self.params = self.place.replicate(self.lm.params)
        config = self.lm.config

        def encode(params, tokens, mask):
            out = forward(params, config, embed_tokens(params, tokens, self.dtype), positions_from_mask(mask), mask,
                          logits="none")
            return pool(out.hidden, mask, pooling).astype(jnp.float32)

        self._encode = jax.jit(encode)

    @property
    def dim(self) -> int:
        return self.lm.config.hidden_size

    def encode_token_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        pad = self.lm.config.pad_token_id if self.lm.config.pad_token_id is not None else 0
        out = []
        for start in range(0, len(ids), self.batch_size):
            chunk = [list(x) for x in ids[start:start + self.batch_size]]
            tokens, mask = pad_left(chunk, pad)
            pooled = self._encode(self.params, self.place.split(tokens), self.place.split(mask))
            out.append(np.asarray(pooled)[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_token_ids([self.tokenizer(t)["input_ids"] for t in texts])

    def encode_files(self, paths: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        raise ValueError(f"{self.lm.path}: a causal LM text encoder (kind 'causal_lm') does not embed images")
