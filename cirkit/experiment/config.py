"""Strict loading of experiment settings into frozen dataclasses.

Every error names the file, the dotted key, what was found and what was expected; unknown keys are errors, and
so are values of the right type that make no sense (the checks in each config's ``__post_init__``).
Lists become tuples, ints are accepted where floats are expected (never the reverse), and bools are never
taken for numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from ..config_checks import InvalidConfig
from ..ordering import flatten

__all__ = ["ConfigError", "build", "parse_override", "apply_override", "expand_sweep"]


class ConfigError(ValueError):
    """An experiment file or override does not fit the pipeline's config."""


def _where(source: str, path: str) -> str:
    return f"{source}: key '{path}'" if path else source


def _found(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def build(cls: type, data: Any, *, source: str, path: str = "", base: Any = None) -> Any:
    """Build an instance of the frozen dataclass ``cls`` from nested TOML data, strictly.

    ``base`` (the field's default instance) supplies every key the table leaves out, so a partial table
    overrides only what it names."""
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(source, path)}: expected a table for {cls.__name__}, found {_found(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(
            f"{_where(source, key)}: unknown key; {cls.__name__} has {', '.join(sorted(fields)) or 'no keys'}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        default = getattr(base, name) if base is not None else f.default
        if name in data:
            nested_base = default if dataclasses.is_dataclass(default) and not isinstance(default, type) else None
            kwargs[name] = convert(hints[name], data[name], source=source, path=key, base=nested_base)
        elif base is not None:
            kwargs[name] = default
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_where(source, key)}: missing; expected {_type_name(hints[name])}")
    try:
        return cls(**kwargs)
    except InvalidConfig as exc:  # a value of the right type that makes no sense (a check in __post_init__)
        key = f"{path}.{exc.key}" if path else exc.key
        raise ConfigError(f"{_where(source, key)}: expected {exc.expected}, found {_found(exc.found)}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(source, path)}: {exc}") from exc


def convert(tp: Any, value: Any, *, source: str, path: str, base: Any = None) -> Any:  # noqa: C901
    origin, args = get_origin(tp), get_args(tp)
    where = _where(source, path)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, source=source, path=path)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {_found(value)}")
    if origin is Literal:
        if any(type(a) is type(value) and a == value for a in args):
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(repr(a) for a in args)}, found {_found(value)}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source=source, path=path, base=base if isinstance(base, tp) else None)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), found {_found(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} entries, found {len(value)}")
            return tuple(convert(a, v, source=source, path=f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return tuple(convert(item, v, source=source, path=f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, found {_found(value)}")
        vt = args[1] if args else Any
        return types.MappingProxyType({k: convert(vt, v, source=source, path=f"{path}.{k}") for k, v in value.items()})
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{where}: field type {_type_name(tp)} is not supported in experiment files")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, found {_found(value)}")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def parse_override(text: str) -> tuple[str, Any]:
    """``"retrieve.k=10"`` -> ``("retrieve.k", 10)``; the value is read as TOML, else as a plain string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example retrieve.k=10")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"--set {text!r}: the key is empty")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_override(data: dict, key: str, value: Any, *, source: str) -> dict:
    """A copy of ``data`` with the dotted ``key`` set to ``value`` (intermediate tables are created)."""
    out = _deepcopy(data)
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{_where(source, '.'.join(parts[: i + 1]))}: is not a table, cannot set {key}")
        node = child
    node[parts[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def expand_sweep(sweep: dict, *, source: str) -> list[dict[str, Any]]:
    """The grid of a ``[sweep]`` table (dotted key -> list of values), in file order, as override dicts."""
    if not sweep:
        return [{}]
    keys = []
    for key, values in flatten(sweep, ".").items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{_where(source, 'sweep.' + key)}: expected a non-empty list of values, found {_found(values)}")
        keys.append((key, values))
    return [dict(zip([k for k, _ in keys], combo)) for combo in itertools.product(*[v for _, v in keys])]


