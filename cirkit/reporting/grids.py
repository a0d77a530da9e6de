"""Qualitative comparison: for chosen, sampled, or most-changed queries, the reference image, the
instruction, each run's intermediate texts and its top-k thumbnails with the targets marked, and how the
target's rank moved between runs."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from .runs import RunView, query_text, target_ranks

__all__ = ["pick_queries", "grids_section"]


def _rank_value(rank: int | None, k: int) -> int:
    return k + 1 if rank is None else rank  # not retrieved ranks just below the list


def pick_queries(views: list[RunView], *, chosen: tuple[str, ...] = (), n: int = 4, seed: int = 0) -> dict[str, list[str]]:
    """Sections of query ids: ``chosen``; the biggest wins and losses of the last run against the first
    (by how far the target's rank moved); and a seeded sample of the rest."""
    ranks = [target_ranks(v.split, v.ranking) for v in views]
    common = [q for q in ranks[0] if all(q in r for r in ranks[1:])] if ranks and ranks[0] else []
    out: dict[str, list[str]] = {}
    if chosen:
        out["chosen queries"] = [q for q in chosen if q in common]
    taken = set(out.get("chosen queries", []))
    if len(views) > 1 and common:
        k = views[0].ranking.indices.shape[1]
        moves = {q: _rank_value(ranks[0][q], k) - _rank_value(ranks[-1][q], k) for q in common}
        wins = sorted((q for q in common if moves[q] > 0), key=lambda q: (-moves[q], q))[:n]
        losses = sorted((q for q in common if moves[q] < 0), key=lambda q: (moves[q], q))[:n]
        out[f"biggest wins of {views[-1].name} over {views[0].name}"] = wins
        out[f"biggest losses of {views[-1].name} against {views[0].name}"] = losses
        taken |= set(wins) | set(losses)
    rest = [q for q in common if q not in taken]
    if rest:
        picked = np.random.default_rng(seed).choice(len(rest), size=min(n, len(rest)), replace=False)
        out["sampled queries"] = [rest[i] for i in sorted(picked)]
    return {title: qs for title, qs in out.items() if qs}


def _img(jpeg: bytes | None, label: str, cls: str = "") -> str:
    if jpeg is None:
        return f"<span class='noimg {cls}' title='{html.escape(label)}'>{html.escape(label[:10])}</span>"
    data = base64.b64encode(jpeg).decode()
    return (f"<img class='thumb {cls}' alt='{html.escape(label)}' title='{html.escape(label)}' "
            f"src='data:image/jpeg;base64,{data}'>")


def _rank_text(rank: int | None) -> str:
    return "not in top k" if rank is None else f"rank {rank}"


def grids_section(views: list[RunView], sections: dict[str, list[str]], thumbs: dict[str, bytes], *, k: int = 5) -> str:
    if not sections:
        return ""
    ranks = [target_ranks(v.split, v.ranking) for v in views]
    lookups = []
    for v in views:
        rows = {q: i for i, q in enumerate(v.ranking.query_ids)}
        queries = {q.id: (i, q) for i, q in enumerate(v.split.queries)}
        lookups.append((rows, queries))
    parts = ["<h2>queries</h2>"]
    for title, ids in sections.items():
        parts.append(f"<h3>{html.escape(title)}</h3>")
        for qid in ids:
            q_index, query = lookups[0][1][qid]
            truth = views[0].split.truths[q_index]
            targets = set(truth.valid())
            reference = getattr(query, "reference", None)
            moves = []
            for i, v in enumerate(views):
                r = ranks[i].get(qid)
                note = ""
                if i:
                    before, after = _rank_value(ranks[0].get(qid), 10**9), _rank_value(r, 10**9)
                    note = " <span class='up'>▲ better</span>" if after < before else \
                        " <span class='down'>▼ worse</span>" if after > before else ""
                moves.append(f"{html.escape(v.name)}: {_rank_text(r)}{note}")
            head = (f"<div class='query'><div class='qhead'><code>{html.escape(qid)}</code> "
                    f"<span class='instr'>{html.escape(query_text(query))}</span><br><small>{' · '.join(moves)}</small></div>")
            ref = f"reference<br>{_img(thumbs.get(reference), reference)}<br>" if reference else ""
            shown = sorted(targets)[:3]
            ref = f"<div class='ref'>{ref}target{'s' if len(shown) > 1 else ''}<br>" + \
                "".join(_img(thumbs.get(t), t, "target") for t in shown) + "</div>"
            rows = []
            for i, v in enumerate(views):
                row_index = lookups[i][0].get(qid)
                top = v.ranking.ranked_ids(row_index, k) if row_index is not None else []
                cells = "".join(_img(thumbs.get(g), g, "target" if g in targets else "") for g in top)
                shown: dict[str, str] = {}  # text -> the first step that produced it (later copies are skipped)
                for step, vals in v.texts.items():
                    shown.setdefault(vals[lookups[i][1][qid][0]], step)
                texts = "".join(f"<div class='text'><b>{html.escape(step)}</b>: {html.escape(text[:300])}</div>"
                                for text, step in shown.items())
                rows.append(f"<div class='runrow'><div class='runname'>{html.escape(v.name)}</div>"
                            f"<div class='topk'>{cells}</div>{texts}</div>")
            parts.append(head + f"<div class='qbody'>{ref}<div>{''.join(rows)}</div></div></div>")
    return "".join(parts)


def images_needed(views: list[RunView], sections: dict[str, list[str]], *, k: int = 5) -> list[Any]:
    """The gallery ImageRefs the grids show (references, top-k, targets), for thumbnailing."""
    wanted: set[str] = set()
    for v in views:
        rows = {q: i for i, q in enumerate(v.ranking.query_ids)}
        queries = {q.id: q for q in v.split.queries}
        for qid in (q for qs in sections.values() for q in qs):
            if qid in rows:
                wanted |= set(v.ranking.ranked_ids(rows[qid], k))
            ref = getattr(queries.get(qid), "reference", None)
            if ref:
                wanted.add(ref)
            index = next((i for i, q in enumerate(v.split.queries) if q.id == qid), None)
            if index is not None:
                wanted |= set(sorted(v.split.truths[index].valid())[:3])
    refs = {}
    for v in views:
        for im in v.split.gallery.images:
            if im.id in wanted and im.id not in refs:
                refs[im.id] = im
    return list(refs.values())
