"""Composed training triplets as the trainer's data: the frozen vision states of each triplet's reference and
target (the tower is frozen, so they are computed once, here, not in every step) and the edit text's token
ids, left-padded to a fixed width; with the frozen LLM's folder and the task prompts' ids that the task binds."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data.errors import DataError
from ..data.model import Split
from ..encoders.interface import ModelRef
from ..engine import artifact_type, stage
from .batching import pad_rows
from .loading import folder_digest, task_ids, tokenizer_of
from .model import PromptTexts
from .vision import load_vision

__all__ = ["TrainingTriplets", "training_triplets"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class TrainingTriplets:
    reference: np.ndarray  # [n, tokens, dim] float32: frozen vision states of each query's reference image
    target: np.ndarray  # [n, tokens, dim] of its target image
    tokens: np.ndarray  # [n, max_text_tokens] int32 edit-text ids, left-padded
    mask: np.ndarray  # [n, max_text_tokens] int32
    query_task: tuple[int, ...]
    target_task: tuple[int, ...]
    llm: str  # the frozen LLM's folder
    llm_digest: str

    def fields(self) -> dict[str, np.ndarray]:
        return {"reference": self.reference, "target": self.target, "tokens": self.tokens, "mask": self.mask}


def _pad_id(llm: str) -> int:
    from ..lm.config import read_lm_config

    pad = read_lm_config(llm).pad_token_id
    return 0 if pad is None else pad


@stage(version=1, helpers=[pad_rows, task_ids])
def training_triplets(config: PromptTexts, split: Split, llm: str, vision: ModelRef) -> TrainingTriplets:
    """The split's (reference, edit text, target) triplets ready for training."""
    if split.truths is None:
        raise DataError(f"{split.benchmark} {split.split}: no ground truth, so no targets to train on")
    paths = {im.id: im.path for im in split.gallery.images}
    needed = sorted({q.reference for q in split.queries} | {t.target for t in split.truths})
    missing = [i for i in needed if i not in paths]
    if missing:
        raise DataError(f"{split.benchmark} {split.split}: image {missing[0]!r} is not in the split's gallery")
    row = {image: i for i, image in enumerate(needed)}
    states = load_vision(vision.path, vision.digest).states_of_files([paths[i] for i in needed])
    tok = tokenizer_of(llm)
    tokens, mask = pad_rows([task_ids(tok, q.text) for q in split.queries], _pad_id(llm), config.max_text_tokens,
                            width=config.max_text_tokens)
    return TrainingTriplets(states[[row[q.reference] for q in split.queries]],
                            states[[row[t.target] for t in split.truths]], tokens, mask,
                            tuple(task_ids(tok, config.query_task)), tuple(task_ids(tok, config.target_task)),
                            llm, folder_digest(llm))
