"""Small stages the methods share: query subsets, reference images, instructions, answer texts, fields."""

from __future__ import annotations

import dataclasses

from .. import config_checks as checks
from ..data.model import ComposedQuery, ImageRef, Split
from ..engine import stage
from ..models.roles import Answers

__all__ = ["SubsetConfig", "take_queries", "reference_images", "instructions", "AnswerTexts", "answer_texts",
           "FieldNames", "zip_fields"]


@dataclasses.dataclass(frozen=True)
class SubsetConfig:
    max_queries: int = 0  # 0: all (ImageScope itself cuts CIRR val to the first 2400)

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "max_queries")


@stage(version=1)
def take_queries(config: SubsetConfig, split: Split) -> Split:
    n = config.max_queries or len(split.queries)
    return dataclasses.replace(split, queries=split.queries[:n], truths=split.truths[:n] if split.truths else None,
                               query_galleries=split.query_galleries[:n] if split.query_galleries else None)


@stage(version=1)
def reference_images(config: None, split: Split) -> tuple[ImageRef, ...]:
    index = {im.id: im for im in split.gallery.images}
    return tuple(index[q.reference] for q in split.queries if isinstance(q, ComposedQuery))


@stage(version=1)
def instructions(config: None, split: Split) -> tuple[str, ...]:
    """Modification texts (ImageScope's quirk: an empty CIRR caption reads as "the same image")."""
    return tuple((q.text or "the same image") for q in split.queries)


@dataclasses.dataclass(frozen=True)
class AnswerTexts:
    key: str = ""  # a JSON key to read; "" for plain-text answers


@stage(version=1)
def answer_texts(config: AnswerTexts, answers: Answers) -> tuple[str, ...]:
    """One text per answer: the key's value if the answer is an object, else the (fallback) text itself."""
    out = []
    for value in answers.values:
        if isinstance(value, dict) and config.key:
            found = value.get(config.key, "")
            out.append(" ".join(map(str, found)) if isinstance(found, list) else str(found))
        else:
            out.append(str(value))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class FieldNames:
    names: tuple[str, ...]


@stage(version=1)
def zip_fields(config: FieldNames, columns: tuple) -> tuple[dict, ...]:
    """Template variables per query from parallel columns of texts."""
    return tuple(dict(zip(config.names, row, strict=True)) for row in zip(*columns, strict=True))
