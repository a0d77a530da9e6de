"""A trained CIR-LVLM as a composed encoder (the ``cir_lvlm`` kind of the encoder registry): images go the
target path, (reference image, edit text) pairs the query path; both land in one space."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from ...mllm.loading import load_trained
from .task import LVLMConfig, LVLMTask

__all__ = ["LVLMEncoder"]


class LVLMEncoder:
    def __init__(self, directory: str, dtype: str = "float32", batch_size: int = 32) -> None:
        if dtype != "float32":
            raise ValueError(f"a CIR-LVLM encoder runs in float32, not {dtype!r}")
        self.loaded = load_trained(directory, "cir_lvlm", LVLMConfig, LVLMTask)
        self.batch_size = batch_size
        task = self.loaded.task
        self._queries = jax.jit(lambda p, f, t, m: task.embed_queries(p, f, t, m)[0])
        self._targets = jax.jit(lambda p, f: task.embed_targets(p, f)[0])

    @property
    def dim(self) -> int:
        return self.loaded.task.bb.lm.hidden_size

    def _batches(self, n: int):
        return [slice(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    def encode_files(self, paths: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        features = self.loaded.vision.states_of_files(list(paths))
        out = [np.asarray(self._targets(self.loaded.params, features[s])) for s in self._batches(len(paths))]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_queries(self, paths: Sequence[str], texts: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        features = self.loaded.vision.states_of_files(list(paths))
        limit = self.loaded.task.config.texts.max_text_tokens
        out = []
        for s in self._batches(len(paths)):
            tokens, mask = self.loaded.tokens(list(texts[s]), limit)
            out.append(np.asarray(self._queries(self.loaded.params, features[s], tokens, mask)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise ValueError("a CIR-LVLM embeds composed queries (an image and a text) and images, not texts alone")
