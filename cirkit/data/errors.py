"""Reading annotation files with errors that name the file, the entry, the field and what was expected."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["DataError", "read_json", "read_json_list", "field", "find_file"]


class DataError(ValueError):
    """A benchmark file is missing or malformed."""


def read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_json_list(path: str, what: str = "queries") -> list:
    """A JSON file whose top level must be a list (of ``what``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of {what}, found {type(data).__name__}")
    return data


def field(entry: Any, name: str, expected: type | tuple[type, ...], *, file: str, where: str, optional: bool = False) -> Any:
    """``entry[name]`` checked against ``expected`` (bool never counts as int)."""
    if not isinstance(entry, dict):
        raise DataError(f"{file}: {where}: expected an object, found {type(entry).__name__}")
    if name not in entry:
        if optional:
            return None
        raise DataError(f"{file}: {where}: field '{name}' is missing")
    value = entry[name]
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise DataError(f"{file}: {where}: field '{name}': expected {names}, found {type(value).__name__} {value!r}"[:300])
    return value


def find_file(root: str, *candidates: str) -> str:
    """The first of several relative paths that exists under ``root`` (official layout or a flat folder)."""
    for rel in candidates:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            return path
    raise DataError(f"{root}: none of {', '.join(candidates)} exists")
