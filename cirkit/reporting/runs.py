"""Reading runs back for comparison: each run's final evaluation (split + ranking), every target's rank,
the per-query texts its steps produced (captions, target descriptions, propositions, verdicts), and the
cold per-step cost."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..engine import Store
from ..experiment.diff import stored_value

__all__ = ["RunView", "open_run", "target_ranks", "query_text", "step_costs"]


@dataclasses.dataclass
class RunView:
    """One run as the report sees it. ``split``/``ranking`` are those of its last ``evaluate`` step."""

    name: str
    record: dict
    eval_step: str | None = None
    split: Any = None
    ranking: Any = None
    texts: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # step -> one text per query


def _small_json(store: Store, content: str, depth: int = 0) -> bool:
    """Whether a stored value holds no out-of-line arrays (texts, answers), so loading it is cheap."""
    raw = store.fs.read(store.value_path(content))
    if raw is None or depth > 2:
        return False
    doc = json.loads(raw)
    if "gather" in doc:
        return all(_small_json(store, p, depth + 1) for p in doc["gather"]["parts"][:1])
    return all("inline" in ref for ref in doc.get("arrays", []))


def _per_query_texts(value: Any, n: int) -> tuple[str, ...] | None:
    values = getattr(value, "values", None) if type(value).__name__ == "Answers" else value
    if isinstance(values, (tuple, list)) and len(values) == n and n and \
            all(isinstance(v, (str, dict)) for v in values):
        return tuple(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)
    return None


def open_run(store: Store, name: str, *, texts: bool = True) -> RunView:
    record = store.get_run(name)
    if record is None:
        raise KeyError(f"no run named {name!r} in {store.location}")
    view = RunView(name, record)
    evals = [s for s in record.get("steps", []) if s.get("stage") == "evaluate"
             and {"split", "ranking"} <= set(s.get("input_keys", {}))]
    if not evals:
        return view
    last = evals[-1]
    view.eval_step = last["step"]
    split_rec = store.get_record(last["input_keys"]["split"])
    rank_rec = store.get_record(last["input_keys"]["ranking"])
    view.split = stored_value(store, split_rec and split_rec["output"])
    view.ranking = stored_value(store, rank_rec and rank_rec["output"])
    if texts and view.split is not None:
        n = len(view.split.queries)
        asked = tuple(query_text(q) for q in view.split.queries)
        for s in _descendants(record.get("steps", []), last["input_keys"]["split"]):
            if s.get("output") and s.get("stage") != "evaluate" and _small_json(store, s["output"]):
                found = _per_query_texts(stored_value(store, s["output"]), n)
                if found is not None and len(set(found)) > 1 and found != asked:
                    view.texts[s["step"]] = found
    return view


def _descendants(steps: list[dict], key: str) -> list[dict]:
    """The steps computed from the artifact ``key`` (directly or through other steps), in run order: only
    their texts are aligned with that split's queries."""
    reached, out = {key}, []
    for s in steps:
        if set(s.get("input_keys", {}).values()) & reached and s.get("key"):
            reached.add(s["key"])
            out.append(s)
    return out


def target_ranks(split: Any, ranking: Any) -> dict[str, int | None]:
    """Query id -> 1-based rank of its first valid target in the ranking (None: not in the top k)."""
    if split is None or ranking is None or not split.truths:
        return {}
    out: dict[str, int | None] = {}
    row_of = {q: i for i, q in enumerate(ranking.query_ids)}
    for query, truth in zip(split.queries, split.truths, strict=False):
        if query.id not in row_of:
            continue
        valid = set(truth.valid())
        ids = ranking.ranked_ids(row_of[query.id])
        out[query.id] = next((i + 1 for i, g in enumerate(ids) if g in valid), None)
    return out


def query_text(query: Any) -> str:
    """What the user asked: the instruction, the caption, or the dialogue so far."""
    if hasattr(query, "rounds"):
        return " / ".join((query.caption, *query.rounds))
    return getattr(query, "text", "")


def step_costs(store: Store, record: dict) -> dict[str, dict]:
    """Step -> cold cost (seconds, items, the output's own report such as model calls and fallbacks): the run
    record's ``cold`` entry, or for older records the seconds each step's record kept."""
    if record.get("cold"):
        return record["cold"]
    out = {}
    for s in record.get("steps", []):
        rec = store.get_record(s["key"]) if s.get("key") else None
        entry: dict[str, Any] = {"seconds": round(float((rec or {}).get("seconds", s.get("seconds") or 0.0)), 3)}
        if s.get("items_total") is not None:
            entry["items"] = s["items_total"]
        if s.get("report"):
            entry["report"] = s["report"]
        out[s["step"]] = entry
    return out
