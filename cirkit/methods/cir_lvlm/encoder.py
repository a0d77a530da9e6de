"""A trained CIR-LVLM as a composed encoder (the ``cir_lvlm`` kind of the encoder registry): images go the
target path, (reference image, edit text) pairs the query path; both land in one space."""

from __future__ import annotations

from ...mllm.encoder import TrainedEncoder
from .task import LVLMConfig, LVLMTask

__all__ = ["LVLMEncoder"]


class LVLMEncoder(TrainedEncoder):
    method, label, config_type, task_type = "cir_lvlm", "CIR-LVLM", LVLMConfig, LVLMTask

    def query_embedding(self, params, features, tokens, mask):
        return self.loaded.task.embed_queries(params, features, tokens, mask)[0]  # without the pool's key loss

    def target_embedding(self, params, features):
        return self.loaded.task.embed_targets(params, features)[0]

    def query_tokens(self, texts: list[str]):
        return self.loaded.tokens(texts, self.loaded.task.config.texts.max_text_tokens)
