"""Structured outputs: JSON extracted (and repaired) with json_repair, checked against a small schema,
and a recorded fallback when that fails, so a bad answer never stops a run."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import json_repair

from ..engine import artifact_type

__all__ = ["Parsed", "parse_json", "parse_yes_no", "parse_final_answer", "parse_labelled_line"]


@artifact_type
@dataclasses.dataclass(frozen=True)
class Parsed:
    value: Any
    ok: bool
    error: str = ""


def _check(value: Any, schema: dict[str, type | tuple]) -> str:
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    for key, expected in schema.items():
        if key not in value:
            return f"missing key {key!r}"
        if not isinstance(value[key], expected):
            names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
            return f"key {key!r} should be {names}, got {type(value[key]).__name__}"
    return ""


def parse_json(text: str, schema: dict[str, type | tuple], fallback: Any) -> Parsed:
    """The first JSON object in ``text`` (repaired if needed) if it fits ``schema``; else ``fallback``."""
    try:
        value = json_repair.loads(text)
    except Exception as exc:  # noqa: BLE001 - json_repair is lenient, but never trust a model's bytes
        return Parsed(fallback, False, f"unparseable: {type(exc).__name__}")
    if isinstance(value, list):  # a model that wrapped its object in a list, or emitted several
        value = next((v for v in value if isinstance(v, dict)), value)
    problem = _check(value, schema)
    if problem:
        return Parsed(fallback, False, problem)
    return Parsed(value, True)


def parse_yes_no(text: str) -> Parsed:
    """'Yes'/'No' at the start of an answer (case and punctuation ignored); anything else is a fallback 'no'."""
    words = "".join(c if c.isalpha() or c.isspace() else " " for c in text.lower()).split()
    if words and words[0] in ("yes", "no"):
        return Parsed(words[0] == "yes", True)
    if "yes" in words[:5] and "no" not in words[:5]:
        return Parsed(True, True)
    return Parsed(False, False, f"no yes/no answer in {text[:60]!r}")


_FINAL = re.compile(r"ANSWER\s*:\s*\**\s*(yes|no)\b", re.I)


def parse_final_answer(text: str) -> Parsed:
    """The last 'ANSWER: Yes/No' line of a reasoned answer (ImageScope's evaluator); else a leading yes/no."""
    found = _FINAL.findall(text)
    if found:
        return Parsed(found[-1].lower() == "yes", True)
    return parse_yes_no(text)


def parse_labelled_line(text: str, label: str, key: str) -> Parsed:
    """``{key: text}`` from the text after the last ``label:`` up to a blank line (CIReVL's "Edited Description:"
    answers, generated with the stop sequence "\\n\\n"); no label or nothing after it is a failure."""
    at = text.lower().rfind(label.lower() + ":")
    if at < 0:
        return Parsed(None, False, f"no {label!r} line in {text[:60]!r}")
    value = text[at + len(label) + 1 :].split("\n\n", 1)[0].strip()
    return Parsed({key: " ".join(value.split())}, True) if value else Parsed(None, False, f"empty {label!r} line")
