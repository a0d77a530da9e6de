"""What the trained MLLM encoders (kinds ``cir_lvlm`` and ``cir_cot`` of the encoder registry) share: loading
the checkpoint folder, embedding images through the target path and composed queries through the query path
in batches; a method's encoder says only how a query text becomes token rows and what its task returns."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from .loading import load_trained

__all__ = ["TrainedEncoder"]


class TrainedEncoder:
    """Subclasses set ``method`` (the manifest's method), ``label`` (for messages), ``config_type`` and
    ``task_type``, and implement ``query_tokens``; they override ``query_embedding`` / ``target_embedding`` when
    their task returns more than the embedding."""

    method: str
    label: str
    config_type: type
    task_type: type

    def __init__(self, directory: str, dtype: str = "float32", batch_size: int = 32) -> None:
        if dtype != "float32":
            raise ValueError(f"a {self.label} encoder runs in float32, not {dtype!r}")
        self.loaded = load_trained(directory, self.method, self.config_type, self.task_type)
        self.batch_size = batch_size
        self._queries = jax.jit(self.query_embedding)
        self._targets = jax.jit(self.target_embedding)

    def query_embedding(self, params, features, tokens, mask):
        return self.loaded.task.embed_queries(params, features, tokens, mask)

    def target_embedding(self, params, features):
        return self.loaded.task.embed_targets(params, features)

    def query_tokens(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """A batch of query texts as left-padded token ids and mask."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return self.loaded.task.bb.lm.hidden_size

    def _batches(self, n: int):
        return [slice(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    def _stacked(self, out: list) -> np.ndarray:
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_files(self, paths: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        features = self.loaded.vision.states_of_files(list(paths))
        return self._stacked([np.asarray(self._targets(self.loaded.params, features[s]))
                              for s in self._batches(len(paths))])

    def encode_queries(self, paths: Sequence[str], texts: Sequence[str], boxes: Sequence | None = None) -> np.ndarray:
        features = self.loaded.vision.states_of_files(list(paths))
        out = []
        for s in self._batches(len(paths)):
            tokens, mask = self.query_tokens(list(texts[s]))
            out.append(np.asarray(self._queries(self.loaded.params, features[s], tokens, mask)))
        return self._stacked(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise ValueError(f"a {self.label} embeds composed queries (an image and a text) and images, not texts alone")
