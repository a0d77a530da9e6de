"""Checks on config values, run when a config is made (``__post_init__``), so nonsense never reaches a stage.

A search depth of 0 or an empty list of K would otherwise give numbers (all recalls 0.00, no metrics at all)
instead of an error. A failed check raises :class:`InvalidConfig` naming the key (a dotted path for checks
across fields), what was expected and what was found; the experiment loader adds the file and the table:
``FILE: key 'search.k': expected an integer >= 1, found int 0``. Imports nothing from cirkit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InvalidConfig", "fail", "integers_at_least", "numbers_at_least", "number_between", "one_of",
           "positive_ks"]


class InvalidConfig(ValueError):
    """A config value that makes no sense. ``key`` is relative to the config that raised it."""

    def __init__(self, owner: str, key: str, expected: str, found: Any) -> None:
        self.owner, self.key, self.expected, self.found = owner, key, expected, found
        super().__init__(f"{owner}: key '{key}': expected {expected}, found {_found(found)}")


def _found(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fail(config: Any, key: str, expected: str, found: Any) -> None:
    raise InvalidConfig(type(config).__name__, key, expected, found)


def integers_at_least(config: Any, low: int, *keys: str) -> None:
    """Each of ``keys`` holds an int >= ``low``."""
    for key in keys:
        value = getattr(config, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            fail(config, key, f"an integer >= {low}", value)


def numbers_at_least(config: Any, low: float, *keys: str, strict: bool = False) -> None:
    """Each of ``keys`` holds a number >= ``low`` (> ``low`` if ``strict``); NaN never passes."""
    for key in keys:
        value = getattr(config, key)
        if not (_is_number(value) and (value > low if strict else value >= low)):
            fail(config, key, f"a number {'>' if strict else '>='} {low:g}", value)


def number_between(config: Any, key: str, low: float, high: float) -> None:
    value = getattr(config, key)
    if not (_is_number(value) and low <= value <= high):
        fail(config, key, f"a number from {low:g} to {high:g}", value)


def one_of(config: Any, key: str, options: tuple[Any, ...]) -> None:
    value = getattr(config, key)
    if value not in options:
        fail(config, key, "one of " + ", ".join(repr(o) for o in options), value)


def positive_ks(config: Any, key: str, *, allow_empty: bool = False) -> None:
    """``key`` holds K values (integers >= 1) for metrics such as Recall@K; empty only where that means a default."""
    ks = tuple(getattr(config, key))
    if not ks and not allow_empty:
        fail(config, key, "a non-empty list of integers >= 1 (the K of each metric)", list(ks))
    if any(not (isinstance(k, int) and not isinstance(k, bool) and k >= 1) for k in ks):
        fail(config, key, "integers >= 1 (the K of each metric)", list(ks))
