"""What stored content must look like before it is trusted.

A store may be someone else's data, so every name taken from it (keys, content hashes, array digests,
namespaces, shard ids) is checked here before it becomes a path: 64 (shard ids: 32) lowercase hex digits,
nothing else. Documents are checked for the names they hold; JSON too deeply nested to parse is corrupt.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "BadName", "Corrupt", "check_name", "check_names", "is_name", "load_json", "check_record", "check_shard", "check_run",
]

_NAME = {"key": re.compile(r"[0-9a-f]{64}"), "shard": re.compile(r"[0-9a-f]{32}")}
_HEX = frozenset("0123456789abcdef")


class BadName(ValueError):
    """A name taken from stored content is not a well-formed key, hash, digest or shard id."""


class Corrupt(ValueError):
    """A stored entry does not decode, fails its checksum or names something malformed."""


class MissingContent(KeyError):
    """A content hash is not in the store (or was corrupt)."""


def check_name(name: Any, kind: str = "key") -> str:
    """``name`` if it is a well-formed ``key`` (keys, content hashes, array digests and namespaces: 64
    lowercase hex digits) or ``shard`` id (32); raise :class:`BadName` otherwise."""
    if not (isinstance(name, str) and _NAME[kind].fullmatch(name)):
        raise BadName(f"{name!r} is not a valid {kind} name ({'64' if kind == 'key' else '32'} lowercase hex digits)")
    return name


def check_names(names: Any, kind: str = "key") -> list[str]:
    """:func:`check_name` for a whole list at once (a shard's item keys), at C speed."""
    size = 64 if kind == "key" else 32
    if not (isinstance(names, list) and all(type(n) is str and len(n) == size for n in names)
            and _HEX.issuperset("".join(names))):
        for name in names if isinstance(names, list) else [names]:
            check_name(name, kind)
        raise BadName(f"{names!r:.80} is not a list of {kind} names")
    return names


def load_json(raw: bytes) -> Any:
    """Parse stored JSON; anything malformed, including nesting too deep to parse, is :class:`Corrupt`."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise Corrupt(f"not JSON ({type(exc).__name__})") from None


def is_name(name: Any, kind: str = "key") -> bool:
    return isinstance(name, str) and _NAME[kind].fullmatch(name) is not None


def _check_optional(name: Any) -> None:
    if name is not None:
        check_name(name)


def check_record(doc: dict) -> None:
    check_name(doc.get("output"))
    _check_optional(doc.get("namespace"))
    for name in (*doc.get("inputs", {}).values(), *doc.get("input_keys", {}).values()):
        _check_optional(name)


def check_shard(doc: dict) -> None:
    check_name(doc.get("value"))
    check_names(doc.get("items"))


def _items(value: Any, kind: type) -> Any:
    """``value`` if it has the expected shape, else an empty one: a run of the wrong *shape* is reported field
    by field where runs are read (``experiment.run_record``); here only the names a store would turn into paths
    are checked."""
    return value if isinstance(value, kind) else kind()


def check_run(doc: dict) -> None:
    for key in _items(doc.get("artifacts"), list):
        check_name(key)
    for output in _items(doc.get("outputs"), dict).values():
        if isinstance(output, dict):
            check_name(output.get("key"))
            check_name(output.get("content"))
    for step in _items(doc.get("steps"), list):  # what show, diff and report look up
        if not isinstance(step, dict):
            continue
        for name in (step.get("key"), step.get("output"), *_items(step.get("inputs"), dict).values(),
                     *_items(step.get("input_keys"), dict).values()):
            _check_optional(name)
