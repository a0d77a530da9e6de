"""CLIP tokenisation: transformers' ``CLIPTokenizer`` loaded from the checkpoint directory, to fixed length."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .clip_config import CheckpointError

__all__ = ["ClipTokenizer"]


class ClipTokenizer:
    """Token ids padded/truncated to the context length; truncation keeps the end-of-text token last."""

    def __init__(self, directory: str, context_length: int) -> None:
        from transformers import CLIPTokenizer

        has_files = any(os.path.isfile(os.path.join(directory, f)) for f in ("tokenizer.json", "vocab.json"))
        if not has_files:
            raise CheckpointError(f"{directory}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
        # from_pretrained, not CLIPTokenizer(vocab_file=..., merges_file=...): in transformers v5 the latter
        # silently builds a two-token vocabulary.
        self.tokenizer = CLIPTokenizer.from_pretrained(directory)
        if len(self.tokenizer) <= 2:
            raise CheckpointError(f"{directory}: the tokenizer loaded with only {len(self.tokenizer)} tokens")
        self.context_length = context_length

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.context_length)
        return np.asarray(out["input_ids"], dtype=np.int32)
