"""Server submission files: CIRR (recall: top 50, recall_subset: top 3) and CIRCO (top 50 ids per query).

Writers produce exactly the servers' layouts; readers validate a file against a split's queries and
say which query and field is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..data.errors import DataError, read_json
from ..data.model import Split

__all__ = ["cirr_submission", "circo_submission", "read_cirr_submission", "read_circo_submission", "write_json"]

CIRR_TOP = {"recall": 50, "recall_subset": 3}


def cirr_submission(ranked: Mapping[str, Sequence[str]], metric: str, version: str = "rc2") -> dict:
    """``{"version": "rc2", "metric": metric, "<pairid>": [names]}`` with the top 50 or top 3 names."""
    if metric not in CIRR_TOP:
        raise ValueError(f"CIRR metric must be one of {', '.join(CIRR_TOP)}, not {metric!r}")
    top = CIRR_TOP[metric]
    out: dict = {"version": version, "metric": metric}
    for pairid, names in ranked.items():
        if len(names) < top:
            raise ValueError(f"CIRR {metric}: query {pairid} has {len(names)} candidates, the server needs {top}")
        out[str(pairid)] = [str(n) for n in names[:top]]
    return out


def circo_submission(ranked: Mapping[str, Sequence[str]], top: int = 50) -> dict:
    """``{"<query id>": [top 50 integer image ids]}``."""
    out = {}
    for qid, ids in ranked.items():
        if len(ids) < top:
            raise ValueError(f"CIRCO: query {qid} has {len(ids)} candidates, the server needs {top}")
        out[str(qid)] = [int(i) for i in ids[:top]]
    return out


def write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def read_cirr_submission(path: str, split: Split) -> tuple[str, dict[str, list[str]]]:
    """(metric, pairid -> names), checked against the split's queries and gallery."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object, found {type(data).__name__}")
    metric = data.get("metric")
    if metric not in CIRR_TOP:
        raise DataError(f"{path}: field 'metric': expected 'recall' or 'recall_subset', found {metric!r}")
    if not isinstance(data.get("version"), str):
        raise DataError(f"{path}: field 'version': expected a string such as 'rc2', found {data.get('version')!r}")
    known = set(split.gallery.ids())
    ranked = {}
    for q in split.queries:
        names = data.get(q.id)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{path}: query {q.id}: expected a list of image names, found {names!r}"[:300])
        if len(names) != CIRR_TOP[metric]:
            raise DataError(f"{path}: query {q.id}: expected {CIRR_TOP[metric]} names for {metric}, found {len(names)}")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{path}: query {q.id}: {unknown[0]!r} is not an image of CIRR {split.split}")
        ranked[q.id] = names
    extra = set(data) - {"version", "metric"} - set(ranked)
    if extra:
        raise DataError(f"{path}: {len(extra)} entries are not queries of CIRR {split.split} (e.g. {sorted(extra)[0]!r})")
    return metric, ranked


def read_circo_submission(path: str, split: Split) -> dict[str, list[str]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping query ids to lists of image ids")
    ranked = {}
    for q in split.queries:
        ids = data.get(q.id)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise DataError(f"{path}: query {q.id}: expected a list of integer image ids, found {str(ids)[:80]}")
        if not ids:
            raise DataError(f"{path}: query {q.id}: the list is empty")
        ranked[q.id] = [str(i) for i in ids]
    extra = set(data) - set(ranked)
    if extra:
        raise DataError(f"{path}: {len(extra)} entries are not queries of CIRCO {split.split} (e.g. {sorted(extra)[0]!r})")
    return ranked
