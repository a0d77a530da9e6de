"""The data model: images, galleries, queries of the three kinds, and their ground truth.

All frozen and registered as artifact types, so a loaded benchmark is itself a cached, hashable value.
Image identity includes the file's content hash, so a replaced image file invalidates what was computed
from it even when its name stays the same.
"""

from __future__ import annotations

import dataclasses

from ..engine import artifact_type

__all__ = ["ImageRef", "Gallery", "TextQuery", "ComposedQuery", "ChatQuery", "Truth", "Split", "Query"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An image: the benchmark's id, its file, the file's SHA-256 ("" if not hashed) and an optional crop
    box ``(x, y, width, height)`` in pixels (GeneCIS's Visual Genome instances)."""

    id: str
    path: str
    content: str = ""
    box: tuple[float, float, float, float] | None = None


@artifact_type
@dataclasses.dataclass(frozen=True)
class Gallery:
    """The images a query is ranked against, in a fixed order (rankings are indices into it)."""

    name: str
    images: tuple[ImageRef, ...]

    def ids(self) -> tuple[str, ...]:
        return tuple(im.id for im in self.images)

    def index(self) -> dict[str, int]:
        return {im.id: i for i, im in enumerate(self.images)}


@artifact_type
@dataclasses.dataclass(frozen=True)
class TextQuery:
    """Text-to-image retrieval: find the image a caption describes."""

    id: str
    text: str


@artifact_type
@dataclasses.dataclass(frozen=True)
class ComposedQuery:
    """Composed retrieval: a reference image and a modification text (and CIRCO's optional shared concept)."""

    id: str
    reference: str
    text: str
    shared_concept: str | None = None


@artifact_type
@dataclasses.dataclass(frozen=True)
class ChatQuery:
    """Chat-based retrieval: a caption, then question/answer rounds (each "question? answer")."""

    id: str
    caption: str
    rounds: tuple[str, ...] = ()

    def text_at(self, round_: int) -> str:
        """The dialogue up to round ``round_`` (0 = caption only), joined with ', ' as ChatIR does."""
        return ", ".join((self.caption, *self.rounds[:round_]))


Query = TextQuery | ComposedQuery | ChatQuery


@artifact_type
@dataclasses.dataclass(frozen=True)
class Truth:
    """Ground truth of one query. ``target`` is the annotated target; ``targets`` every valid one (CIRCO);
    ``subset`` the candidates to rank within (CIRR img_set, GeneCIS per-query gallery); ``category`` the
    FashionIQ category; ``aspects`` CIRCO's semantic aspects."""

    target: str | None = None
    targets: tuple[str, ...] = ()
    subset: tuple[str, ...] = ()
    category: str | None = None
    aspects: tuple[str, ...] = ()

    def valid(self) -> tuple[str, ...]:
        return self.targets or ((self.target,) if self.target is not None else ())


@artifact_type
@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a benchmark: a gallery, queries and (where public) aligned ground truth."""

    benchmark: str
    split: str
    gallery: Gallery
    queries: tuple[Query, ...]
    truths: tuple[Truth, ...] | None = None
    query_galleries: tuple[tuple[str, ...], ...] | None = None  # GeneCIS: each query's own gallery

    def __post_init__(self) -> None:
        if self.truths is not None and len(self.truths) != len(self.queries):
            raise ValueError(f"{self.benchmark} {self.split}: {len(self.truths)} truths for {len(self.queries)} queries")
