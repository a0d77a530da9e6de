"""A trained CIR-CoT as a composed encoder (the ``cir_cot`` kind of the encoder registry) that can also reason.

``generate`` writes each query's chain of thought; ``encode_queries`` reads a query text as the edit text, then
(after the first newline) its chain of thought, and embeds [prefix, edit, CoT, end token, EMB] exactly as the
model was trained; a text without a chain of thought embeds [prefix, edit, EMB] (the no-CoT ablation).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...mllm.batching import pad_rows
from ...mllm.data import reasoned_rows
from ...mllm.encoder import TrainedEncoder
from ...mllm.loading import task_ids
from .task import CoTConfig, CoTTask

__all__ = ["CoTEncoder", "SEPARATOR"]

SEPARATOR = "\n"  # between a query's edit text and its chain of thought (edit texts are one line)


class CoTEncoder(TrainedEncoder):
    method, label, config_type, task_type = "cir_cot", "CIR-CoT", CoTConfig, CoTTask

    def __init__(self, directory: str, dtype: str = "float32", batch_size: int = 32) -> None:
        super().__init__(directory, dtype, batch_size)
        eos = self.loaded.task.bb.lm.eos_token_ids
        self.eos = eos[0] if eos else self.loaded.pad_id

    def query_tokens(self, texts: list[str]):
        config = self.loaded.task.config.tokenisation()
        rows = []
        for edit, sep, cot in (t.partition(SEPARATOR) for t in texts):
            settings = config if sep else type(config)(config.texts, config.max_cot_tokens, False)
            rows.append(reasoned_rows(self.loaded.tokenizer, self.eos, [edit], [cot], settings)[0][0])
        return pad_rows(rows, self.loaded.pad_id, config.texts.max_text_tokens + config.max_cot_tokens + 1)

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
