"""Tiny random backbones for the trained methods: a 2-layer Llama-layout LM built in memory and random
"frozen vision features" that make composed triplets learnable (the target's features are the reference's
plus a direction chosen by the edit's first token)."""

from __future__ import annotations

import numpy as np

from cirkit.lm.config import LMConfig
from cirkit.lm.weights import LanguageModel, random_params

VOCAB = 64


def tiny_lm(layers: int = 2, hidden: int = 32, seed: int = 0) -> LanguageModel:
    config = LMConfig(model_type="llama", vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4,
                      max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1,
                      eos_token_ids=(2,), pad_token_id=0)
    return LanguageModel(config, random_params(config, seed, std=0.2), "tiny-random")


def triplets(n: int, *, tokens: int = 5, dim: int = 16, seed: int = 0, edits: int = 4) -> dict:
    """``n`` (reference features, edit ids, target features); edit k adds direction k to every image token."""
    rng = np.random.default_rng(seed)
    directions = 3.0 * rng.standard_normal((edits, dim)).astype(np.float32)
    reference = rng.standard_normal((n, tokens, dim)).astype(np.float32)
    kind = rng.integers(0, edits, n)
    target = reference + directions[kind][:, None, :]
    ids = np.stack([10 + kind, 20 + rng.integers(0, 4, n), 30 + kind]).T.astype(np.int32)
    return {"reference": reference, "target": target, "tokens": ids, "mask": np.ones_like(ids)}


def cot_triplets(n: int, **kw) -> dict:
    """``triplets`` whose edit text is followed by a chain of thought determined by the edit (then the end token
    2): ``labels`` mark the CoT and end tokens, the ones the model must learn to write."""
    data = triplets(n, **kw)
    kind = data["tokens"][:, 0] - 10
    cot = np.stack([40 + kind, 44 + kind, 48 + kind, np.full_like(kind, 2)]).T.astype(np.int32)
    tokens = np.concatenate([data["tokens"], cot], axis=1)
    labels = np.concatenate([np.zeros_like(data["tokens"]), np.ones_like(cot)], axis=1)
    return {**data, "tokens": tokens, "mask": np.ones_like(tokens), "labels": labels, "cot": cot,
            "prompt": data["tokens"]}
