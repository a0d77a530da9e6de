"""The importer of LDRE/SEIZE's published LLM outputs: a benchmark annotation file whose entries carry the
sampled captions of the reference and their rewrites, so a run reproduces without any model.

The published format (LDRE's ``CIRCO/annotations/test_multi_gpt3-5.json``) is the benchmark's own list of
query entries with two more fields per entry: ``multi_caption_opt``, the N sampled captions, and
``multi_gpt-3.5_opt``, one rewrite per caption. Entries are matched to cirkit's queries by their id (``pairid``
for CIRR, ``id`` for CIRCO). A rewrite field may also hold N lists of M rewrites. Texts are used as published
(a rewrite that kept an "Edited Description:" prefix keeps it, as the authors' own retrieval did).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...data.errors import DataError, read_json_list
from ...data.model import Split
from ...engine import artifact_type, stage

__all__ = ["PublishedConfig", "PublishedTexts", "read_published", "ColumnConfig", "published_column"]


@dataclasses.dataclass(frozen=True)
class PublishedConfig:
    path: str
    captions_key: str = "multi_caption_opt"  # the N sampled captions of each entry
    rewrites_key: str = "multi_gpt-3.5_opt"  # one rewrite per caption, or per caption a list of M
    id_key: str = ""  # "": "pairid" (CIRR) or "id" (CIRCO), whichever the entries have


@artifact_type
@dataclasses.dataclass(frozen=True)
class PublishedTexts:
    """Per query (in the split's order): its captions and, per caption, its rewrites."""

    source: str
    captions: tuple[tuple[str, ...], ...]
    rewrites: tuple[tuple[tuple[str, ...], ...], ...]


def _strings(value, file: str, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise DataError(f"{file}: {where}: field '{name}': expected a non-empty list of strings, found "
                        f"{type(value).__name__} {value!r}"[:300])
    return tuple(value)


def _entry_texts(config: PublishedConfig, entry, file: str, where: str) -> tuple[tuple, tuple]:
    if not isinstance(entry, dict):
        raise DataError(f"{file}: {where}: expected an object, found {type(entry).__name__}")
    for name in (config.captions_key, config.rewrites_key):
        if name not in entry:
            raise DataError(f"{file}: {where}: field '{name}' is missing (the published captions/rewrites)")
    captions = _strings(entry[config.captions_key], file, where, config.captions_key)
    raw = entry[config.rewrites_key]
    if isinstance(raw, list) and raw and all(isinstance(r, list) for r in raw):
        rewrites = tuple(_strings(r, file, where, config.rewrites_key) for r in raw)
    else:
        rewrites = tuple((r,) for r in _strings(raw, file, where, config.rewrites_key))
    if len(rewrites) != len(captions):
        raise DataError(f"{file}: {where}: field '{config.rewrites_key}': expected one rewrite (or list) per caption, "
                        f"found {len(rewrites)} for {len(captions)} captions")
    return captions, rewrites


@stage(version=1, volatile=True, helpers=[_strings, _entry_texts])
def read_published(config: PublishedConfig, split: Split) -> PublishedTexts:
    """The published captions and rewrites of every query of ``split`` (re-read on every run)."""
    entries = read_json_list(config.path, "query entries")
    keys = (config.id_key,) if config.id_key else ("pairid", "id")
    by_id = {}
    for i, entry in enumerate(entries):
        found = [k for k in keys if isinstance(entry, dict) and k in entry]
        if not found:
            raise DataError(f"{config.path}: entry {i}: field '{keys[0]}' is missing (the query id)")
        by_id[str(entry[found[0]])] = (i, entry)
    captions, rewrites = [], []
    for query in split.queries:
        if query.id not in by_id:
            raise DataError(f"{config.path}: no entry for query {query.id!r} of {split.benchmark} "
                            f"(field '{'/'.join(keys)}')")
        i, entry = by_id[query.id]
        c, r = _entry_texts(config, entry, config.path, f"entry {i} (query {query.id})")
        captions.append(c)
        rewrites.append(r)
    return PublishedTexts(config.path, tuple(captions), tuple(rewrites))


@dataclasses.dataclass(frozen=True)
class ColumnConfig:
    kind: Literal["captions", "rewrites"]
    caption: int  # 0-based caption index
    rewrite: int = 0  # 0-based rewrite index (rewrites only)


@stage(version=1)
def published_column(config: ColumnConfig, texts: PublishedTexts) -> tuple[str, ...]:
    """Caption ``caption`` (or its rewrite ``rewrite``) of every query; too few published is a clear error."""
    out = []
    for q, (captions, rewrites) in enumerate(zip(texts.captions, texts.rewrites, strict=True)):
        if config.caption >= len(captions) or (config.kind == "rewrites" and config.rewrite >= len(rewrites[config.caption])):
            have = len(captions) if config.caption >= len(captions) else len(rewrites[config.caption])
            what = "captions" if config.caption >= len(captions) else f"rewrites of caption {config.caption + 1}"
            raise DataError(f"{texts.source}: query {q} has {have} {what}; the config asks for more "
                            f"(lower captions/rewrites)")
        out.append(captions[config.caption] if config.kind == "captions" else rewrites[config.caption][config.rewrite])
    return tuple(out)
