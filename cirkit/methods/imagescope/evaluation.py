"""ImageScope's stage 3 as the official code runs it: one stitched image per (reference, candidate) pair,
the top alpha candidates asked in rank order, stopping at the first Yes.

The stitched images (reference left, candidate right, each resized to ``size`` x ``size``; a black left
half when there is no reference, as in text-to-image) are a cached file set exported to a folder. Round
``j`` asks about the rank-``j`` candidate of every query still open (``early_stop``) or of every query;
the first accepted candidate moves to rank 1, so both settings rank alike and differ in calls made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os

from PIL import Image

from ...builtin.files import FileSet, pack_files
from ...data.model import ComposedQuery, ImageRef, Split
from ...engine import stage
from ...models.roles import Answers, RoleInput
from ...retrieval.ranking import Ranking

__all__ = ["PairsConfig", "stitch_pairs", "evaluator_images", "RoundConfig", "nothing_accepted", "round_inputs",
           "update_accepted", "promote_accepted", "BLACK"]

BLACK = "black"  # the id of the missing reference in a stitched image's name


@dataclasses.dataclass(frozen=True)
class PairsConfig:
    alpha: int = 3  # candidates evaluated per query, in rank order
    stitch: bool = True  # official: one stitched image; False: reference and candidate as two images
    size: int = 800  # each half of a stitched image, in pixels (official 800 x 800)


def _pairs(config: PairsConfig, split: Split, ranking: Ranking) -> list[list[tuple[ImageRef | None, ImageRef]]]:
    """Per query, (reference or None, candidate) for its top alpha candidates in rank order."""
    gallery = split.gallery.images
    index = {im.id: im for im in gallery}
    out = []
    for q, query in enumerate(split.queries):
        reference = index[query.reference] if isinstance(query, ComposedQuery) else None
        out.append([(reference, gallery[i]) for i in ranking.indices[q, : config.alpha] if i >= 0])
    return out


def _stitched_name(reference: ImageRef | None, candidate: ImageRef) -> str:
    return f"{reference.id if reference is not None else BLACK}+{candidate.id}.png"


def _stitch(reference: ImageRef | None, candidate: ImageRef, size: int) -> bytes:
    canvas = Image.new("RGB", (2 * size, size), (0, 0, 0))
    if reference is not None:
        canvas.paste(Image.open(reference.path).convert("RGB").resize((size, size), Image.BICUBIC), (0, 0))
    canvas.paste(Image.open(candidate.path).convert("RGB").resize((size, size), Image.BICUBIC), (size, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@stage(version=1, helpers=[_pairs, _stitched_name, _stitch])
def stitch_pairs(config: PairsConfig, split: Split, ranking: Ranking) -> FileSet:
    """Every pair's stitched image (reference left, candidate right), once per distinct pair."""
    files = {}
    for pairs in _pairs(config, split, ranking):
        for reference, candidate in pairs:
            name = _stitched_name(reference, candidate)
            if name not in files:
                files[name] = _stitch(reference, candidate, config.size)
    return pack_files(files)


@stage(version=1, helpers=[_pairs, _stitched_name])
def evaluator_images(config: PairsConfig, split: Split, ranking: Ranking, folder: str | None) -> tuple:
    """Per query, per candidate, the images the evaluator sees: (stitched,) or (reference, candidate)."""
    out = []
    for pairs in _pairs(config, split, ranking):
        row = []
        for reference, candidate in pairs:
            if config.stitch:
                name = _stitched_name(reference, candidate)
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
                row.append((ImageRef(name[:-4], path, content),))
            else:
                row.append((reference, candidate) if reference is not None else (candidate,))
        out.append(tuple(row))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    rank: int  # which candidate (0-based rank) this round asks about
    early_stop: bool = True  # official: a query leaves the rounds at its first Yes


@stage(version=1)
def nothing_accepted(config: None, split: Split) -> tuple[int, ...]:
    """The accepted rank per query before stage 3 (-1: none yet)."""
    return (-1,) * len(split.queries)


def _rows(config: RoundConfig, images: tuple, accepted: tuple[int, ...]) -> list[int]:
    return [q for q, row in enumerate(images)
            if config.rank < len(row) and not (config.early_stop and accepted[q] >= 0)]


@stage(version=1, helpers=[_rows])
def round_inputs(config: RoundConfig, images: tuple, instructions: tuple[str, ...],
                 accepted: tuple[int, ...]) -> tuple[RoleInput, ...]:
    return tuple(RoleInput((("instruction", instructions[q]),), tuple(images[q][config.rank]))
                 for q in _rows(config, images, accepted))


@stage(version=1, helpers=[_rows])
def update_accepted(config: RoundConfig, images: tuple, accepted: tuple[int, ...], verdicts: Answers) -> tuple[int, ...]:
    """Record the round's Yes answers for queries that had none yet."""
    rows = _rows(config, images, accepted)
    if len(rows) != len(verdicts.values):
        raise ValueError(f"{len(verdicts.values)} verdicts for {len(rows)} questions in round {config.rank}")
    out = list(accepted)
    for q, yes in zip(rows, verdicts.values, strict=True):
        if bool(yes) and out[q] < 0:
            out[q] = config.rank
    return tuple(out)


@stage(version=1)
def promote_accepted(config: None, ranking: Ranking, accepted: tuple[int, ...]) -> Ranking:
    """Move each query's accepted candidate to rank 1; the others keep their order."""
    indices, scores = ranking.indices.copy(), ranking.scores.copy()
    for q, a in enumerate(accepted):
        if a > 0:
            order = [a] + [i for i in range(a + 1) if i != a]
            indices[q, : a + 1] = ranking.indices[q, : a + 1][order]
            scores[q, : a + 1] = ranking.scores[q, : a + 1][order]
    return Ranking(ranking.query_ids, ranking.gallery_ids, indices, scores)

