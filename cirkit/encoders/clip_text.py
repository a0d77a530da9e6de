"""CLIP tokenisation: transformers' ``CLIPTokenizer`` loaded from the checkpoint directory, to fixed length."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from .clip_config import CheckpointError

__all__ = ["ClipTokenizer", "clip_tokenizer_class"]


def _not_torch_advice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("PyTorch was not found")


def clip_tokenizer_class() -> type:
    """transformers' ``CLIPTokenizer``, imported without the "PyTorch was not found" advice that importing
    transformers logs without torch: only its tokenizer is used here, and torch is an optional extra."""
    logger = logging.getLogger("transformers")
    logger.addFilter(_not_torch_advice)
    try:
        from transformers import CLIPTokenizer
    finally:
        logger.removeFilter(_not_torch_advice)
    return CLIPTokenizer


class ClipTokenizer:
    """Token ids padded/truncated to the context length; truncation keeps the end-of-text token last."""

    def __init__(self, directory: str, context_length: int) -> None:
        CLIPTokenizer = clip_tokenizer_class()  # noqa: N806 - a class

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
