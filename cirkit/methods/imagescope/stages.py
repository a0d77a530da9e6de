"""ImageScope's stages 1-3 (WWW 2025): description ensembles, proposition verification, pairwise evaluation.

Stage 1 parses the reasoner's operations and descriptions; stage 2 checks yes/no propositions on each of
the top-k candidates and stably re-ranks them by how many hold; stage 3 asks the evaluator about the top
alpha candidates in order and moves the first accepted one to rank 1. Candidates are never compared with
each other, as in the paper.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ... import config_checks as checks
from ...data.model import ComposedQuery, ImageRef, Split
from ...engine import stage
from ...models.roles import Answers, RoleInput
from ...retrieval.ranking import Ranking

__all__ = ["DescriptionConfig", "subset_by_rank_then_score", "descriptions", "group_rows", "proposition_fields", "RerankConfig",
           "verification_inputs", "rerank_by_propositions", "description_counts", "evaluation_inputs", "promote_first_accepted",
           "blank_references", "STEP_KEYS", "TurnConfig", "chat_turns", "joined_texts"]

STEP_KEYS = (("step1", "operations"), ("step2", "descriptions"))  # the official prompts' answer keys


@stage(version=1)
def blank_references(config: None, split) -> tuple[str, ...]:
    """Text-to-image and chat queries have no reference: ImageScope describes it as a blank image."""
    return tuple("A blank image." for _ in split.queries)


@dataclasses.dataclass(frozen=True)
class DescriptionConfig:
    n: int = 3  # descriptions kept per query (VisDial: 1)
    pad: bool = False  # official: average over the descriptions received; True fills up to n with the fallback

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "n")


def _found(value, n: int) -> list[str]:
    found = value.get("descriptions", []) if isinstance(value, dict) else []
    found = [found] if isinstance(found, str) else found if isinstance(found, list) else []
    return [str(d) for d in found if isinstance(d, (str, int, float)) and str(d).strip()][:n]


def _per_query(config: DescriptionConfig, answers: Answers, fallbacks: tuple[str, ...]) -> list[list[str]]:
    out = []
    for value, fallback in zip(answers.values, fallbacks, strict=True):
        texts = _found(value, config.n) or [fallback]
        out.append(texts + [fallback] * (config.n - len(texts)) if config.pad else texts)
    return out


@stage(version=1, helpers=[_found, _per_query])
def descriptions(config: DescriptionConfig, answers: Answers, fallbacks: tuple[str, ...]) -> tuple[str, ...]:
    """Up to ``n`` descriptions per query, flattened; a query with none gets its fallback (``pad``: exactly n)."""
    return tuple(t for texts in _per_query(config, answers, fallbacks) for t in texts)


@stage(version=1, helpers=[_found, _per_query])
def description_counts(config: DescriptionConfig, answers: Answers, fallbacks: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(len(texts) for texts in _per_query(config, answers, fallbacks))


@stage(version=2)
def group_rows(config: None, embeddings: np.ndarray, counts: tuple[int, ...]) -> np.ndarray:
    """The mean unit description vector of each query (however many descriptions it has)."""
    e = np.asarray(embeddings, np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if bounds[-1] != len(e):
        raise ValueError(f"{len(e)} description embeddings for {bounds[-1]} descriptions")
    return np.stack([e[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])


@stage(version=1)
def proposition_fields(config: None, answers: Answers, instructions: tuple[str, ...]) -> tuple[dict, ...]:
    ops = [v.get("operations", []) if isinstance(v, dict) else [] for v in answers.values]
    return tuple({"instruction": t, "operations": json.dumps(o)[:2000]} for t, o in zip(instructions, ops, strict=True))


@dataclasses.dataclass(frozen=True)
class RerankConfig:
    top_k: int = 20  # stage 2: candidates verified per query
    alpha: int = 3  # stage 3: candidates evaluated per query, in order

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "top_k", "alpha")
        if self.alpha > self.top_k:
            checks.fail(self, "alpha", f"at most top_k = {self.top_k} (stage 3 evaluates stage 2's candidates)",
                        self.alpha)


def _expected(answer) -> bool:
    """An expected answer: ``true``/"yes"/"True" read as yes (JSON booleans included), anything else as no."""
    if isinstance(answer, bool):
        return answer
    return str(answer).strip().lower().startswith(("y", "true"))


def _propositions(answers: Answers) -> list[list[tuple[str, bool]]]:
    out = []
    for value in answers.values:
        props = value.get("propositions", []) if isinstance(value, dict) else []
        clean = []
        for p in props if isinstance(props, list) else []:
            if isinstance(p, dict) and isinstance(p.get("question"), str) and p["question"].strip():
                clean.append((p["question"].strip(), _expected(p.get("answer", "yes"))))
        out.append(clean)
    return out


def _gallery(split: Split) -> tuple[ImageRef, ...]:
    return split.gallery.images


@stage(version=1, helpers=[_propositions, _expected])
def verification_inputs(config: RerankConfig, split: Split, ranking: Ranking, propositions: Answers) -> tuple[RoleInput, ...]:
    """One verifier call per (query, top-k candidate, proposition), in that order."""
    gallery = _gallery(split)
    out = []
    for q, props in enumerate(_propositions(propositions)):
        for idx in ranking.indices[q, : config.top_k]:
            if idx >= 0:
                out += [RoleInput((("question", question),), (gallery[idx],)) for question, _ in props]
    return tuple(out)


def _reorder(ranking: Ranking, q: int, order: list[int], indices: np.ndarray, scores: np.ndarray) -> None:
    head = len(order)
    indices[q, :head] = ranking.indices[q, :head][order]
    scores[q, :head] = ranking.scores[q, :head][order]


@stage(version=1, helpers=[_propositions, _expected, _reorder])
def rerank_by_propositions(config: RerankConfig, ranking: Ranking, propositions: Answers, verdicts: Answers) -> Ranking:
    """Stable re-ranking of each query's top-k by the number of propositions whose answer matches."""
    indices, scores = ranking.indices.copy(), ranking.scores.copy()
    cursor = 0
    for q, props in enumerate(_propositions(propositions)):
        k = int(np.sum(ranking.indices[q, : config.top_k] >= 0))
        counts = []
        for _ in range(k):
            answers = verdicts.values[cursor : cursor + len(props)]
            cursor += len(props)
            counts.append(sum(1 for (_, expected), got in zip(props, answers, strict=True) if bool(got) == expected))
        order = sorted(range(k), key=lambda i: -counts[i])  # sorted() is stable: ties keep retrieval order
        _reorder(ranking, q, order, indices, scores)
    if cursor != len(verdicts.values):
        raise ValueError(f"{len(verdicts.values)} verdicts for {cursor} checks")
    return Ranking(ranking.query_ids, ranking.gallery_ids, indices, scores)


@stage(version=1)
def evaluation_inputs(config: RerankConfig, split: Split, ranking: Ranking, instructions: tuple[str, ...]) -> tuple[RoleInput, ...]:
    """(reference, candidate, instruction) for each query's top alpha candidates, in rank order."""
    gallery = _gallery(split)
    index = {im.id: im for im in gallery}
    out = []
    for q, (query, text) in enumerate(zip(split.queries, instructions, strict=True)):
        reference = index[query.reference] if isinstance(query, ComposedQuery) else None
        for idx in ranking.indices[q, : config.alpha]:
            if idx >= 0:
                images = (reference, gallery[idx]) if reference is not None else (gallery[idx],)
                out.append(RoleInput((("instruction", text),), images))
    return tuple(out)


@stage(version=1, helpers=[_reorder])
def promote_first_accepted(config: RerankConfig, ranking: Ranking, verdicts: Answers) -> Ranking:
    """Move the first of the top alpha candidates the evaluator accepts to rank 1 (others keep their order)."""
    indices, scores = ranking.indices.copy(), ranking.scores.copy()
    cursor = 0
    for q in range(len(ranking.query_ids)):
        a = int(np.sum(ranking.indices[q, : config.alpha] >= 0))
        accepted = [bool(v) for v in verdicts.values[cursor : cursor + a]]
        cursor += a
        if True in accepted:
            first = accepted.index(True)
            _reorder(ranking, q, [first] + [i for i in range(first + 1) if i != first], indices, scores)
    return Ranking(ranking.query_ids, ranking.gallery_ids, indices, scores)


@stage(version=1)
def subset_by_rank_then_score(config: None, ranking: Ranking, by_score: Ranking) -> Ranking:
    """Each query's candidates (``by_score``: its subset ranking, all members by stage-1 score) re-ordered as
    they appear in the re-ranked ``ranking``; members the ranking does not reach follow by score, as in the
    official code, which keeps the top 15,000 (not in the subset file's listing order)."""
    indices = np.full_like(by_score.indices, -1)
    for q in range(len(by_score.query_ids)):
        members = [int(i) for i in by_score.indices[q] if i >= 0]
        reached = [int(i) for i in ranking.indices[q] if int(i) in members]
        ordered = reached + [m for m in members if m not in reached]
        indices[q, : len(ordered)] = ordered
    scores = np.where(indices >= 0, 0.0, -np.inf).astype(np.float32)
    return Ranking(by_score.query_ids, by_score.gallery_ids, indices, scores)


@dataclasses.dataclass(frozen=True)
class TurnConfig:
    round: int  # 1-based: the question/answer the dialogue adds in this round


@stage(version=1)
def chat_turns(config: TurnConfig, split: Split) -> tuple[str, ...]:
    """Each dialogue's question/answer of round ``round`` ("" where the dialogue is shorter)."""
    return tuple(q.rounds[config.round - 1] if len(q.rounds) >= config.round else "" for q in split.queries)


@stage(version=1)
def joined_texts(config: None, first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """``first, second`` per query (a chat round's fallback: the previous description plus the new turn)."""
    return tuple(f"{a}, {b}" if b else a for a, b in zip(first, second, strict=True))
