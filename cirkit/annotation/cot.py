"""Structured chain-of-thought annotations of composed queries (CIR-CoT): a caption of the reference, reasoning
about the modification, and a conclusion that describes the target.

One frozen artifact type for every source (scene graphs, model roles, an imported file), and a plain JSON
file format so annotations can be shared and read back (``write_cot_json`` / ``read_cot_json``, or the
volatile ``import_cot`` stage, which re-reads the file on every run as loaders do).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from ..data.errors import DataError, field, read_json
from ..data.model import Split
from ..engine import artifact_type, stage

__all__ = ["CotAnnotation", "CotAnnotations", "render_cot", "parse_cot", "cot_to_json", "write_cot_json",
           "read_cot_json", "import_cot", "match_cot", "FORMAT"]

FORMAT = "cirkit-cot"
_VERSION = 1
_PARTS = ("caption", "reasoning", "conclusion")


@artifact_type
@dataclasses.dataclass(frozen=True)
class CotAnnotation:
    """One query's chain of thought. ``ok`` is False where a model's answer fell back (the caption or the
    reasoning could not be read), so a trainer can leave it out."""

    query: str  # the query id of the split it annotates
    reference: str  # the reference image id
    instruction: str  # the modification text
    caption: str
    reasoning: str
    conclusion: str
    ok: bool = True

    def render(self) -> str:
        """The three parts as one text (what CIR-CoT is trained to generate before its embedding token)."""
        return render_cot(self.caption, self.reasoning, self.conclusion)


@artifact_type
@dataclasses.dataclass(frozen=True)
class CotAnnotations:
    """Annotations of one split, in query order. ``source`` says where they came from (``scene graphs``,
    ``roles: <models>``, as recorded in an imported file); the fallback counts are those of the model roles."""

    benchmark: str
    split: str
    source: str
    items: tuple[CotAnnotation, ...]
    caption_fallbacks: int = 0
    reasoning_fallbacks: int = 0

    def by_query(self) -> dict[str, CotAnnotation]:
        return {a.query: a for a in self.items}

    def cirkit_json(self) -> dict:
        """What ``cirkit export`` writes: the shareable file format."""
        return cot_to_json(self)

    def cirkit_report(self) -> dict:
        return {"annotations": len(self.items), "usable": sum(1 for a in self.items if a.ok),
                "caption fallbacks": self.caption_fallbacks, "reasoning fallbacks": self.reasoning_fallbacks}


def render_cot(caption: str, reasoning: str, conclusion: str) -> str:
    return f"Caption: {caption}\nReasoning: {reasoning}\nConclusion: {conclusion}"


_LABELS = re.compile(r"^(Caption|Reasoning|Conclusion):[ \t]*", re.M)


def parse_cot(text: str) -> dict[str, str] | None:
    """The parts of a rendered (or generated) CoT; None unless all three labels are there, in order."""
    pieces = _LABELS.split(text)
    found = {pieces[i].lower(): pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
    labels = [pieces[i].lower() for i in range(1, len(pieces) - 1, 2)]
    return found if labels == list(_PARTS) else None


def cot_to_json(annotations: CotAnnotations) -> dict:
    """The shareable JSON form (field names are the format; query order is kept)."""
    return {"format": FORMAT, "version": _VERSION, "benchmark": annotations.benchmark, "split": annotations.split,
            "source": annotations.source, "caption_fallbacks": annotations.caption_fallbacks,
            "reasoning_fallbacks": annotations.reasoning_fallbacks,
            "annotations": [dataclasses.asdict(a) for a in annotations.items]}


def write_cot_json(annotations: CotAnnotations, path: str) -> None:
    """Write atomically (a temporary file, then a rename), UTF-8, one annotation per line for readable diffs."""
    data = cot_to_json(annotations)
    items = data.pop("annotations")
    head = json.dumps(data, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(a, ensure_ascii=False) for a in items)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f'{head}, "annotations": [\n{body}\n]}}\n')
    os.replace(tmp, path)


def read_cot_json(path: str) -> CotAnnotations:
    """Read a file written by :func:`write_cot_json` (or by hand in that format); errors name the file, the
    entry and the field."""
    data = read_json(path)
    top = "top level"
    if field(data, "format", str, file=path, where=top) != FORMAT:
        raise DataError(f"{path}: {top}: field 'format': expected {FORMAT!r}, found {data['format']!r}")
    version = field(data, "version", int, file=path, where=top)
    if version != _VERSION:
        raise DataError(f"{path}: {top}: field 'version': expected {_VERSION} (this cirkit's format), found {version}")
    items = []
    for i, e in enumerate(field(data, "annotations", list, file=path, where=top)):
        where = f"annotations[{i}]"
        values = {name: field(e, name, str, file=path, where=where)
                  for name in ("query", "reference", "instruction", *_PARTS)}
        ok = field(e, "ok", bool, file=path, where=where, optional=True)
        items.append(CotAnnotation(**values, ok=True if ok is None else ok))
    seen: set[str] = set()
    for i, a in enumerate(items):
        if a.query in seen:
            raise DataError(f"{path}: annotations[{i}]: field 'query': {a.query!r} is annotated twice")
        seen.add(a.query)
    counts = {name: field(data, name, int, file=path, where=top, optional=True) or 0
              for name in ("caption_fallbacks", "reasoning_fallbacks")}
    return CotAnnotations(field(data, "benchmark", str, file=path, where=top), field(data, "split", str, file=path, where=top),
                          field(data, "source", str, file=path, where=top), tuple(items), **counts)


@stage(version=1, volatile=True, helpers=[read_cot_json])
def import_cot(config: None, path: str) -> CotAnnotations:
    """Annotations from a shared JSON file (re-read on every run, so an edited file is noticed); ``source`` stays
    what the file says produced them."""
    return read_cot_json(path)


@stage(version=1)
def match_cot(config: None, split: Split, annotations: CotAnnotations) -> CotAnnotations:
    """The annotations of ``split``'s queries in query order, checked against the split (an imported file may
    come from another split or version): every query needs one, with the same reference and instruction."""
    found = annotations.by_query()
    items = []
    for q in split.queries:
        a = found.get(q.id)
        where = f"{annotations.source}: query {q.id}"
        if a is None:
            raise DataError(f"{where}: no annotation for this query of {split.benchmark} {split.split}")
        if (a.reference, a.instruction) != (getattr(q, "reference", None), q.text):
            raise DataError(f"{where}: annotated as ({a.reference!r}, {a.instruction!r}), but the split has "
                            f"({getattr(q, 'reference', None)!r}, {q.text!r})"[:400])
        items.append(a)
    return dataclasses.replace(annotations, items=tuple(items))
