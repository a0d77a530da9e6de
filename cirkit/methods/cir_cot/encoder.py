"""A trained CIR-CoT as a composed encoder (the ``cir_cot`` kind of the encoder registry) that can also reason.

``generate`` writes each query's chain of thought; ``encode_queries`` reads a query text as the edit text, then
(after the first newline) its chain of thought, and embeds [prefix, edit, CoT, end token, EMB] exactly as the
model was trained; a text without a chain of thought embeds [prefix, edit, EMB] (the no-CoT ablation).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from ...mllm.batching import pad_rows
from ...mllm.data import reasoned_rows
from ...mllm.loading import load_trained, task_ids
from .task import CoTConfig, CoTTask

__all__ = ["CoTEncoder", "SEPARATOR"]

SEPARATOR = "\n"  # between a query's edit text and its chain of thought (edit texts are one line)


class CoTEncoder:
    def __init__(self, directory: str, dtype: str = "float32", batch_size: int = 32) -> None:
        if dtype != "float32":
            raise ValueError(f"a CIR-CoT encoder runs in float32, not {dtype!r}")
        self.loaded = load_trained(directory, "cir_cot", CoTConfig, CoTTask)
        self.batch_size = batch_size
        task = self.loaded.task
        self._queries = jax.jit(task.embed_queries)
        self._targets = jax.jit(task.embed_targets)
        eos = task.bb.lm.eos_token_ids
        self.eos = eos[0] if eos else self.loaded.pad_id

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
        config = self.loaded.task.config.tokenisation()
        out = []
        for s in self._batches(len(paths)):
            parts = [t.partition(SEPARATOR) for t in texts[s]]
            rows = []
            for edit, sep, cot in parts:
                settings = config if sep else type(config)(config.texts, config.max_cot_tokens, False)
                rows.append(reasoned_rows(self.loaded.tokenizer, self.eos, [edit], [cot], settings)[0][0])
            width = config.texts.max_text_tokens + config.max_cot_tokens + 1
            tokens, mask = pad_rows(rows, self.loaded.pad_id, width)
            out.append(np.asarray(self._queries(self.loaded.params, features[s], tokens, mask)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def generate(self, paths: Sequence[str], texts: Sequence[str]) -> list[str]:
        """Each query's greedy chain of thought (decoded, without its end token)."""
        features = self.loaded.vision.states_of_files(list(paths))
        limit = self.loaded.task.config.texts.max_text_tokens
        out: list[str] = []
        for s in self._batches(len(paths)):
            prompts = [task_ids(self.loaded.tokenizer, t)[:limit] or [self.loaded.pad_id] for t in texts[s]]
            for ids in self.loaded.task.generate(self.loaded.params, features[s], prompts):
                ids = [i for i in ids if i != self.eos]
                out.append(self.loaded.tokenizer.decode(ids, skip_special_tokens=True).strip())
        return out

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise ValueError("a CIR-CoT embeds composed queries (an image and a text) and images, not texts alone")
