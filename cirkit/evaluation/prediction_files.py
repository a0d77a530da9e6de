"""Scoring existing prediction files (``cirkit evaluate``) under explicit protocol options.

Formats: CIRR and CIRCO in their servers' layouts; for the benchmarks without a server, one JSON object
mapping cirkit's query ids to ranked image ids (FashionIQ ``"<category>-<entry index>"``, GeneCIS
``"<entry index>"``, Flickr30K/MSCOCO the caption's ``sentid``, VisDial ``"<dialogue index>"`` with one
ranked list per round). Problems a server would handle silently (the reference listed, names outside a
CIRR img_set, repeated names) become warnings, one line each with a count and what the official scorer
does; malformed files are errors that name the file, the query and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

from ..data.errors import DataError, read_json
from ..data.model import Split
from . import metrics as m
from .submissions import read_circo_submission, read_cirr_submission

__all__ = ["Scored", "score_cirr", "score_circo", "score_fashioniq", "score_genecis", "score_text_to_image",
           "score_visdial", "read_ranked_file"]

Reference = Literal["remove", "keep"]


@dataclasses.dataclass(frozen=True)
class Scored:
    """Metrics at full precision (empty when the split has no public ground truth) and warnings."""

    metrics: dict
    warnings: tuple[str, ...] = ()


def _repeats(ranked: Mapping[str, Sequence[str]]) -> int:
    return sum(len(set(r)) != len(r) for r in ranked.values())


def _repeat_warning(n: int, official: str, counted_once: bool = True) -> list[str]:
    if not n:
        return []
    how = ("cirkit counts a name at its first place only (a repeat keeps its place and never counts)" if counted_once
           else "every occurrence counts (--duplicates official)")
    return [f"{n} queries list an image more than once: {how}; {official}"]


def score_cirr(split: Split, path: str, *, reference: Reference = "remove") -> Scored:
    """CIRR ``recall`` (R@1/5/10/50) or ``recall_subset`` (Rs@1/2/3) from a server file.

    As the official protocol does, the reference is removed from each list before scoring (later names move
    up; ``reference="keep"`` scores the lists as given), and a subset list keeps only img_set members."""
    metric, ranked = read_cirr_submission(path, split)
    refs = {q.id: q.reference for q in split.queries}
    warnings = []
    with_ref = sum(refs[q] in r for q, r in ranked.items())
    if with_ref:
        action = ("cirkit removes it too" if reference == "remove"
                  else "--reference keep scores it in place (a miss)")
        warnings.append(f"{with_ref} queries list their own reference image: the official protocol removes the "
                        f"reference before scoring, so later names move up; {action}")
    if metric == "recall_subset":
        members = {q.id: set(t.subset) for q, t in zip(split.queries, split.truths or ())}
        outside = sum(any(n not in members[q] for n in r) for q, r in ranked.items())
        if outside:
            warnings.append(f"{outside} queries list images outside their img_set: the official subset protocol "
                            f"ranks img_set members only, so those names are dropped and later names move up; "
                            f"cirkit does the same")
        ranked = {q: [n for n in r if n in members[q]] for q, r in ranked.items()}
    warnings += _repeat_warning(_repeats(ranked), "the official val code sums hits over the top K, so a target "
                                                  "listed twice would count twice there")
    if reference == "remove":
        ranked = {q: [n for n in r if n != refs[q]] for q, r in ranked.items()}
    if split.truths is None or all(t.target is None for t in split.truths):
        return Scored({}, tuple(warnings))
    lists = [ranked[q.id] for q in split.queries]
    targets = [t.target for t in split.truths]
    if metric == "recall":
        return Scored(m.recall_at_k(lists, targets, (1, 5, 10, 50)), tuple(warnings))
    return Scored(m.recall_subset_at_k(lists, targets), tuple(warnings))


def score_circo(split: Split, path: str, *, duplicates: m.Duplicates = "once",
                ks: Sequence[int] = (5, 10, 25, 50)) -> Scored:
    """CIRCO mAP@K over all ground truths, R@K on the annotated target, mAP@10 per semantic aspect."""
    ranked = read_circo_submission(path, split)
    official = ("--duplicates official counts every occurrence, as the official script does" if duplicates == "once"
                else "as the official script does")
    warnings = _repeat_warning(_repeats(ranked), official, counted_once=duplicates == "once")
    if split.truths is None:
        return Scored({}, tuple(warnings))
    truths = split.truths
    out = m.circo_metrics([ranked[q.id] for q in split.queries], [t.target for t in truths],
                          [t.valid() for t in truths], [t.aspects for t in truths], ks, duplicates)
    return Scored(out, tuple(warnings))


def _read_object(path: str) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping query ids to ranked image ids, found {type(data).__name__}")
    return data


def read_ranked_file(path: str, split: Split, *, per_round: bool = False, data: dict | None = None,
                     only_split: bool = True) -> dict[str, list]:
    """``{query id: [image ids, best first]}`` (``per_round``: one such list per dialogue round), checked
    against the split's queries and gallery. ``data``: the file's object if already read; ``only_split``:
    entries that are not queries of the split are an error."""
    data = _read_object(path) if data is None else data
    known = set(split.gallery.ids())
    out: dict[str, list] = {}
    for q in split.queries:
        if q.id not in data:
            raise DataError(f"{path}: query {q.id}: missing (every query of {split.benchmark} {split.split} needs a ranking)")
        value = data[q.id]
        lists = value if per_round else [value]
        what = "a list of ranked lists (one per round)" if per_round else "a list of image ids"
        if not isinstance(value, list) or not value or not all(
                isinstance(r, list) and r and all(isinstance(n, str) for n in r) for r in lists):
            raise DataError(f"{path}: query {q.id}: expected {what} (strings), found {str(value)[:80]}")
        for r in lists:
            unknown = next((n for n in r if n not in known), None)
            if unknown is not None:
                raise DataError(f"{path}: query {q.id}: {unknown!r} is not an image of {split.benchmark} {split.split}")
        out[q.id] = value
    extra = set(data) - set(out)
    if extra and only_split:
        raise DataError(f"{path}: {len(extra)} entries are not queries of {split.benchmark} {split.split} "
                        f"(e.g. {sorted(extra)[0]!r})")
    return out


def _drop_reference(split: Split, ranked: dict[str, list], reference: Reference) -> tuple[dict, list[str]]:
    refs = {q.id: getattr(q, "reference", None) for q in split.queries}
    n = sum(refs[q] in r for q, r in ranked.items())
    if reference == "keep":
        note = [f"{n} queries list their reference image; {split.benchmark} keeps the reference in the gallery, "
                f"so it is scored in place (a miss unless it is the target)"] if n else []
        return ranked, note
    note = [f"{n} queries list their reference image: removed before scoring (--reference remove)"] if n else []
    return {q: [x for x in r if x != refs[q]] for q, r in ranked.items()}, note


def score_fashioniq(splits: Mapping[str, Split], path: str, *, reference: Reference = "keep",
                    ks: Sequence[int] = (10, 50)) -> Scored:
    """FashionIQ R@K per category over its own gallery and the mean over categories (``avg``)."""
    data = _read_object(path)
    per_category, warnings = {}, []
    for cat, split in splits.items():
        if split.truths is None:
            raise DataError(f"FashionIQ {cat} {split.split} has no public ground truth")
        ranked = read_ranked_file(path, split, data=data, only_split=False)
        ranked, notes = _drop_reference(split, ranked, reference)
        repeats = _repeat_warning(_repeats(ranked), "the papers' code ranks each image once")
        warnings += [f"{cat}: {w}" for w in notes + repeats]
        per_category[cat] = m.recall_at_k([ranked[q.id] for q in split.queries], [t.target for t in split.truths], ks)
    known = set().union(*({q.id for q in s.queries} for s in splits.values()))
    other_categories = tuple(f"{c}-" for c in ("dress", "shirt", "toptee") if c not in splits)
    extra = {q for q in set(data) - known if not q.startswith(other_categories)}  # other categories: not scored
    if extra:
        raise DataError(f"{path}: {len(extra)} entries are not FashionIQ {next(iter(splits.values())).split} "
                        f"queries (e.g. {sorted(extra)[0]!r}); ids are '<category>-<entry index>'")
    return Scored(m.fashioniq_average(per_category, ks), tuple(warnings))


def score_genecis(split: Split, path: str) -> Scored:
    """GeneCIS R@1/2/3, each query ranked within its own gallery (ids outside it are dropped, with a warning)."""
    ranked = read_ranked_file(path, split)
    allowed = dict(zip((q.id for q in split.queries), (set(g) for g in split.query_galleries or ())))
    outside = sum(any(n not in allowed[q] for n in r) for q, r in ranked.items())
    warnings = [f"{outside} queries list images outside their own gallery: GeneCIS ranks each query's gallery "
                f"only, so those names are dropped"] if outside else []
    ranked = {q: [n for n in r if n in allowed[q]] for q, r in ranked.items()}
    warnings += _repeat_warning(_repeats(ranked), "the official code ranks each gallery image once")
    return Scored(m.genecis_recall([ranked[q.id] for q in split.queries], [t.target for t in split.truths]),
                  tuple(warnings))


def score_text_to_image(split: Split, path: str, *, ks: Sequence[int] = (1, 5, 10)) -> Scored:
    """Flickr30K / MSCOCO R@K: every caption (five per image) is a query whose target is its image."""
    ranked = read_ranked_file(path, split)
    warnings = _repeat_warning(_repeats(ranked), "the standard protocol ranks each image once")
    return Scored(m.recall_at_k([ranked[q.id] for q in split.queries], [t.target for t in split.truths], ks),
                  tuple(warnings))


def score_visdial(split: Split, path: str, *, k: int = 10) -> Scored:
    """VisDial (ChatIR) Hits@K per round, cumulative: found at round r if in the top K at any round <= r."""
    ranked = read_ranked_file(path, split, per_round=True)
    rounds = {len(v) for v in ranked.values()}
    if len(rounds) != 1:
        raise DataError(f"{path}: every query needs the same number of rounds, found {sorted(rounds)}")
    (n_rounds,) = rounds
    per_round = [[ranked[q.id][r] for q in split.queries] for r in range(n_rounds)]
    return Scored(m.chat_hits(per_round, [t.target for t in split.truths], k))
