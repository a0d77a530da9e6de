"""The standard zero-shot CLIP baselines and the small stages that connect splits to encoders.

Composed queries: ``text`` (the modification text alone), ``image`` (the reference image alone),
``sum`` (unit image + unit text) and ``average`` ((unit image + unit text) / 2). Under cosine retrieval
sum and average rank identically (they differ by a factor of 2); both are reported because papers do.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ..data.model import ChatQuery, ComposedQuery, ImageRef, Split, TextQuery
from ..engine import stage
from ..retrieval.exact import normalise

__all__ = ["gallery_images", "query_texts", "TextsConfig", "BaselineConfig", "compose_queries", "MODES"]

MODES = ("text", "image", "sum", "average")


@stage(version=1)
def gallery_images(config: None, split: Split) -> tuple[ImageRef, ...]:
    return split.gallery.images


@dataclasses.dataclass(frozen=True)
class TextsConfig:
    round: int | None = None  # chat: the dialogue up to this round (None: the whole dialogue)


@stage(version=1)
def query_texts(config: TextsConfig, split: Split) -> tuple[str, ...]:
    """Each query's text: a caption, a modification text, or a dialogue up to ``round``."""
    out = []
    for q in split.queries:
        if isinstance(q, ChatQuery):
            out.append(q.text_at(len(q.rounds) if config.round is None else config.round))
        elif isinstance(q, (TextQuery, ComposedQuery)):
            out.append(q.text)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    mode: Literal["text", "image", "sum", "average"] = "sum"


@stage(version=1)
def compose_queries(config: BaselineConfig, split: Split, gallery: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Query vectors for composed queries from the reference's gallery row and the text embedding."""
    rows = split.gallery.index()
    missing = [q.reference for q in split.queries if q.reference not in rows]
    if missing:
        raise ValueError(f"{split.benchmark}: reference image {missing[0]!r} is not in the gallery")
    image = normalise(np.asarray(gallery)[[rows[q.reference] for q in split.queries]])
    text = normalise(np.asarray(texts))
    if config.mode == "text":
        return text
    if config.mode == "image":
        return image
    combined = image + text
    return combined / 2 if config.mode == "average" else combined
