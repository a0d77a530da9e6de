"""Reading a named run's record and checking its shape before anything uses it.

A run record passes its checksum when it was written whole, not when it was written by this version of cirkit
(or by hand): ``show``, ``export``, ``diff`` and ``report`` read it through :func:`read_run`, so a malformed one
is a one-line error naming the file and the field instead of a traceback deep inside a table or a diff.
"""

from __future__ import annotations

from typing import Any

from ..engine import Store

__all__ = ["RunRecordError", "read_run", "check_run_record"]


class RunRecordError(ValueError):
    """A run record that does not have the shape cirkit writes."""


_TEXT, _NUMBER = (str,), (int, float)
_OPTIONAL_TEXT = (str, type(None))
# field -> the types it may hold, for every step in ``steps`` (the Step fields that show, diff and report read;
# fields added later are allowed)
_STEP_FIELDS: dict[str, tuple[type, ...]] = {
    "step": _TEXT, "stage": _TEXT, "version": (int, str), "code": (object,), "key": _OPTIONAL_TEXT,
    "config": (object,), "inputs": (dict,), "input_keys": (dict,), "status": _TEXT,
    "items_cached": (int, type(None)), "items_total": (int, type(None)), "seconds": _NUMBER,
    "output": _OPTIONAL_TEXT, "report": (dict, type(None)), "config_hash": _TEXT,
}


def _kind(types: tuple[type, ...]) -> str:
    names = {str: "text", int: "an integer", float: "a number", dict: "a table", list: "a list", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _expect(where: str, field: str, value: Any, types: tuple[type, ...]) -> None:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise RunRecordError(f"{where}: field '{field}': expected {_kind(types)}, found {type(value).__name__} "
                             f"{repr(value)[:60]}")


def check_run_record(record: Any, where: str) -> dict:
    """``record`` itself if it has the shape the runner writes, else :class:`RunRecordError` naming the field."""
    if not isinstance(record, dict):
        raise RunRecordError(f"{where}: expected a run record (a table), found {type(record).__name__}")
    for field, types in (("steps", (list,)), ("outputs", (dict,)), ("artifacts", (list,)),
                         ("metrics", (dict, type(None))), ("pipeline", _TEXT)):
        if field not in record:
            raise RunRecordError(f"{where}: field '{field}': missing; expected {_kind(types)}")
        _expect(where, field, record[field], types)
    for i, step in enumerate(record["steps"]):
        _expect(where, f"steps[{i}]", step, (dict,))
        for field, types in _STEP_FIELDS.items():
            if field not in step:
                raise RunRecordError(f"{where}: field 'steps[{i}].{field}': missing; expected {_kind(types)}")
            _expect(where, f"steps[{i}].{field}", step[field], types)
    for name, output in record["outputs"].items():
        _expect(where, f"outputs.{name}", output, (dict,))
        for field in ("key", "content"):
            _expect(where, f"outputs.{name}.{field}", output.get(field), _TEXT)
    for i, key in enumerate(record["artifacts"]):
        _expect(where, f"artifacts[{i}]", key, _TEXT)
    for field, types in (("seconds", _NUMBER), ("started", _TEXT)):
        if field in record:
            _expect(where, field, record[field], types)
    return record


def read_run(store: Store, name: str) -> dict | None:
    """The run ``name`` (None if there is none), checked: :class:`RunRecordError` if it is malformed."""
    record = store.get_run(name)
    if record is None:
        return None
    return check_run_record(record, f"{store.location}/{store.run_path(name)}")
