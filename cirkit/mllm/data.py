"""Composed training triplets as the trainer's data: the frozen vision states of every image the triplets use, stored
once per image (the tower is frozen, so they are computed once, here, not in every step), each triplet's
reference, target and near miss as row numbers into them, and the edit text's token ids, left-padded to a fixed
width; with the frozen LLM's folder and the task prompts' ids that the task binds. A batch gathers its rows
(:meth:`TrainingTriplets.source`), so the task sees per-triplet features without a copy per triplet in the store:
at 576 x 1024 float32 states (2.36 MB an image), CIRR train's 28,225 triplets with a near miss each would take
200 GB stored per triplet, its 16,939 images at most 40 GB. So the table is never whole in memory: the stage hands
the engine a stream of tower batches that it writes to the store as they come, and the stored table loads as a
handle whose batches read only the chunks of their rows (:mod:`cirkit.engine.arrays`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..annotation.cot import CotAnnotations
from ..data.errors import DataError
from ..data.model import Split
from ..encoders.interface import ModelRef
from ..engine import ArrayStream, artifact_type, lazy_fields, stage
from ..lm.config import read_lm_config
from ..training.data import GatherSource
from .batching import pad_rows
from .loading import folder_digest, task_ids, tokenizer_of
from .model import PromptTexts
from .vision import load_vision

__all__ = ["TrainingTriplets", "training_triplets", "ReasonedTexts", "reasoned_triplets"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class TrainingTriplets:
    images: np.ndarray  # [m, tokens, dim] float32: frozen vision states of each image the triplets use, once
    reference: np.ndarray  # [n] int32: each query's reference image, a row of ``images``
    target: np.ndarray  # [n] int32: its target image's row
    tokens: np.ndarray  # [n, max_text_tokens] int32 edit-text ids, left-padded
    mask: np.ndarray  # [n, max_text_tokens] int32
    query_task: tuple[int, ...]
    target_task: tuple[int, ...]
    llm: str  # the frozen LLM's folder
    llm_digest: str
    labels: np.ndarray | None = None  # [n, width] int32: 1 on the tokens a generative loss predicts (CIR-CoT)
    negative: np.ndarray | None = None  # [n] int32: the row of a near miss of each query (CIRR subsets), if known

    @property
    def dim(self) -> int:
        """The vision states' width (the connector's input)."""
        return int(self.images.shape[-1])

    def source(self) -> GatherSource:
        """The trainer's data: batches of ``reference``, ``target`` (and ``negative``) as ``[b, tokens, dim]``
        states gathered from ``images``, with ``tokens``, ``mask`` (and ``labels``) of those triplets."""
        fields = {"reference": self.reference, "target": self.target, "tokens": self.tokens, "mask": self.mask}
        extra = {"labels": self.labels, "negative": self.negative}
        fields.update({k: v for k, v in extra.items() if v is not None})
        images = ("reference", "target", "negative")
        return GatherSource(fields, {"images": self.images}, {k: "images" for k in images if k in fields})


# The table loads as a StoredArray handle (batches read only their rows' chunks; it is written as an ArrayStream, a
# tower batch at a time). Declared here, not in the class: how a field loads changes no result, so no key.
lazy_fields(TrainingTriplets, "images")


def _pad_id(llm: str) -> int:
    pad = read_lm_config(llm).pad_token_id
    return 0 if pad is None else pad


def _image_states(vision: ModelRef, paths: list[str]) -> np.ndarray | ArrayStream:
    """``[len(paths), tokens, dim]`` frozen states as an :class:`~cirkit.engine.ArrayStream`: the engine runs the
    tower one of its batches at a time as it writes the table, so neither the decoded pixels nor the states are
    ever held for more than one batch (CIRR train's table is 40 GB). Blocks are whole tower batches, so every
    image goes through the same batch composition as in one call. No paths: an empty array."""
    tower = load_vision(vision.path, vision.digest)
    if not paths:
        return tower.states_of_files([])
    step = getattr(tower, "batch_size", 32)
    return ArrayStream(len(paths), (tower.states_of_files(paths[i:i + step]) for i in range(0, len(paths), step)))


def _states(split: Split, vision: ModelRef, keep: np.ndarray | None = None, negatives: bool = True
            ) -> tuple[np.ndarray | ArrayStream, np.ndarray, np.ndarray, np.ndarray | None]:
    """The frozen vision states of each image the (kept) queries use, once per image in sorted id order, and per
    query the row of its reference, of its target and (with ``negatives``, when every query has a CIRR-style
    subset with a near miss) of its first near miss, a hard negative."""
    if split.truths is None:
        raise DataError(f"{split.benchmark} {split.split}: no ground truth, so no targets to train on")
    paths = {im.id: im.path for im in split.gallery.images}
    pairs = [(q, t) for i, (q, t) in enumerate(zip(split.queries, split.truths)) if keep is None or keep[i]]
    misses = [next((m for m in t.subset if m not in (q.reference, t.target)), None) for q, t in pairs]
    use_misses = negatives and all(m is not None for m in misses)
    needed = sorted({q.reference for q, _ in pairs} | {t.target for _, t in pairs}
                    | (set(misses) if use_misses else set()))
    missing = [i for i in needed if i not in paths]
    if missing:
        raise DataError(f"{split.benchmark} {split.split}: image {missing[0]!r} is not in the split's gallery")
    row = {image: i for i, image in enumerate(needed)}

    def rows(ids) -> np.ndarray:
        return np.asarray([row[i] for i in ids], np.int32)

    negative = rows(misses) if use_misses else None
    return (_image_states(vision, [paths[i] for i in needed]), rows(q.reference for q, _ in pairs),
            rows(t.target for _, t in pairs), negative)


@stage(version=2, helpers=[pad_rows, task_ids, _states, _image_states])
def training_triplets(config: PromptTexts, split: Split, llm: str, vision: ModelRef) -> TrainingTriplets:
    """The split's (reference, edit text, target) triplets ready for training."""
    images, reference, target, negative = _states(split, vision)
    tok = tokenizer_of(llm)
    tokens, mask = pad_rows([task_ids(tok, q.text) for q in split.queries], _pad_id(llm), config.max_text_tokens,
                            width=config.max_text_tokens)
    return TrainingTriplets(images, reference, target, tokens, mask, tuple(task_ids(tok, config.query_task)),
                            tuple(task_ids(tok, config.target_task)), llm, folder_digest(llm), negative=negative)


@dataclasses.dataclass(frozen=True)
class ReasonedTexts:
    """How CIR-CoT's training sequences are tokenised: the prompts, the longest chain of thought kept, and
    whether there is one at all (``use_cot`` off: the ablation that embeds right after the edit text)."""

    texts: PromptTexts = PromptTexts()
    max_cot_tokens: int = 64
    use_cot: bool = True


def reasoned_rows(tok, eos: int, edits: list[str], cots: list[str], config: ReasonedTexts):
    """Per triplet the edit ids, then (with ``use_cot``) the chain of thought's ids and the end token; and which of
    those a generative loss predicts (the chain of thought and its end token)."""
    rows, labelled = [], []
    for edit, cot in zip(edits, cots):
        ids = task_ids(tok, edit)[:config.texts.max_text_tokens]
        tail = (task_ids(tok, cot)[:config.max_cot_tokens] + [eos]) if config.use_cot else []
        rows.append(ids + tail)
        labelled.append([0] * len(ids) + [1] * len(tail))
    return rows, labelled


@stage(version=2, helpers=[pad_rows, task_ids, _states, _image_states, reasoned_rows])
def reasoned_triplets(config: ReasonedTexts, split: Split, annotations: CotAnnotations, llm: str,
                      vision: ModelRef) -> TrainingTriplets:
    """The split's triplets with each query's annotated chain of thought after its edit text (queries whose
    annotation fell back are left out)."""
    by_query = annotations.by_query()
    missing = [q.id for q in split.queries if q.id not in by_query]
    if missing:
        raise DataError(f"{split.benchmark} {split.split}: query {missing[0]!r} has no CoT annotation "
                        f"({len(missing)} of {len(split.queries)} lack one)")
    keep = np.asarray([by_query[q.id].ok for q in split.queries])
    if not keep.any():
        raise DataError(f"{split.benchmark} {split.split}: every CoT annotation fell back; nothing to train on")
    images, reference, target, _ = _states(split, vision, keep, negatives=False)
    tok = tokenizer_of(llm)
    queries = [q for q, k in zip(split.queries, keep) if k]
    eos = read_lm_config(llm).eos_token_ids
    rows, labelled = reasoned_rows(tok, eos[0] if eos else _pad_id(llm), [q.text for q in queries],
                                   [by_query[q.id].render() for q in queries], config)
    width = config.texts.max_text_tokens + (config.max_cot_tokens + 1 if config.use_cot else 0)
    tokens, mask = pad_rows(rows, _pad_id(llm), width, width=width)
    labels, _ = pad_rows(labelled, 0, width, width=width)
    texts = config.texts
    return TrainingTriplets(images, reference, target, tokens, mask, tuple(task_ids(tok, texts.query_task)),
                            tuple(task_ids(tok, texts.target_task)), llm, folder_digest(llm), labels)
