"""Lossless, pickle-free encoding of stage outputs as a JSON tree plus NumPy arrays.

JSON carries the structure; each array becomes a ``{"$array": i}`` leaf whose data goes to Zarr (a stored
array's handle becomes the same leaf, so how an array was held never shows in what is stored). Types
JSON cannot express are tagged (tuples, bytes, non-finite floats, non-string dict keys, dataclasses).
Decoding instantiates only dataclasses registered with :func:`artifact_type`, so reading a store never
runs code chosen by whoever wrote it.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from .arrays import ArrayStream, StoredArray

__all__ = ["artifact_type", "lazy_fields", "encode", "decode", "describe", "CodecError"]

T = TypeVar("T")
_TYPES: dict[str, type] = {}


class CodecError(ValueError):
    """A value cannot be stored, or a stored tree does not decode."""


_LAZY: dict[str, frozenset[str]] = {}


def lazy_fields(cls: type, *names: str) -> None:
    """Load these array fields of a registered dataclass from the store as :class:`~.arrays.StoredArray` handles
    (rows read on indexing) instead of whole arrays. Neither the stored layout nor any hash changes: a statement
    beside the class, not in it, so that declaring it leaves the keys of code that reads the class as they were."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise CodecError(f"{cls.__qualname__} has no field {unknown[0]!r}")
    name = f"{cls.__module__}:{cls.__qualname__}"
    _LAZY[name] = _LAZY.get(name, frozenset()) | frozenset(names)


def artifact_type(cls: T) -> T:
    """Register a frozen dataclass so stored values of that type decode back into it."""
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):
        raise CodecError(f"{cls!r} must be a frozen dataclass to be stored")
    name = f"{cls.__module__}:{cls.__qualname__}"
    _TYPES[name] = cls
    return cls


def encode(value: Any) -> tuple[Any, list[np.ndarray]]:
    """Encode ``value`` into a JSON-ready tree and the list of arrays the tree refers to by index."""
    arrays: list[np.ndarray] = []
    return _enc(value, arrays), arrays


def decode(tree: Any, arrays: Any) -> Any:
    """Rebuild a value from :func:`encode`'s output. ``arrays`` is the list of arrays, or a loader indexed the same
    way; one with a ``lazy(i)`` method is asked for array ``i`` that way where a dataclass field named in
    :func:`lazy_fields` holds it (a :class:`~.arrays.StoredArray` handle instead of the whole array)."""
    return _dec(tree, arrays)


def _enc(v: Any, arrays: list[np.ndarray]) -> Any:  # noqa: C901
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int) and not isinstance(v, np.generic):
        return v
    if isinstance(v, float) and not isinstance(v, np.generic):
        if math.isfinite(v):
            return v
        return {"$float": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(v, ArrayStream):
        raise CodecError("an ArrayStream is written to the store (Store.spill, which the engine calls on a stage's "
                         "output) before its value is stored")
    if isinstance(v, StoredArray):  # a stored array's handle: the same leaf as the array it holds
        arrays.append(v)
        return {"$array": len(arrays) - 1, "scalar": False}
    if isinstance(v, (np.ndarray, np.generic)):
        arr = np.asarray(v)
        if arr.dtype.hasobject:
            raise CodecError("cannot store a numpy array of dtype object")
        arrays.append(arr)
        return {"$array": len(arrays) - 1, "scalar": isinstance(v, np.generic)}
    if isinstance(v, list):
        return [_enc(x, arrays) for x in v]
    if isinstance(v, tuple):
        return {"$tuple": [_enc(x, arrays) for x in v]}
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in v):
            return {k: _enc(x, arrays) for k, x in v.items()}
        return {"$dict": [[_enc(k, arrays), _enc(x, arrays)] for k, x in v.items()]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        name = f"{type(v).__module__}:{type(v).__qualname__}"
        if _TYPES.get(name) is not type(v):
            raise CodecError(f"{name} is not registered; decorate it with @artifact_type to store it")
        fields = {f.name: _enc(getattr(v, f.name), arrays) for f in dataclasses.fields(v)}
        return {"$dataclass": name, "fields": fields}
    raise CodecError(f"cannot store a value of type {type(v).__qualname__}")


def _dec(t: Any, arrays: list[np.ndarray]) -> Any:  # noqa: C901
    if isinstance(t, list):
        return [_dec(x, arrays) for x in t]
    if not isinstance(t, dict):
        return t
    if "$array" in t:
        arr = arrays[t["$array"]]
        return arr[()] if t.get("scalar") else arr
    if "$tuple" in t:
        return tuple(_dec(x, arrays) for x in t["$tuple"])
    if "$float" in t:
        return float(t["$float"])
    if "$bytes" in t:
        return base64.b64decode(t["$bytes"])
    if "$dict" in t:
        return {_hashable(_dec(k, arrays)): _dec(x, arrays) for k, x in t["$dict"]}
    if "$dataclass" in t:
        cls = _registered(t["$dataclass"])
        lazy = _LAZY.get(t["$dataclass"], ()) if hasattr(arrays, "lazy") else ()
        return cls(**{k: (arrays.lazy(x["$array"]) if k in lazy and _is_array_leaf(x) else _dec(x, arrays))
                      for k, x in t["fields"].items()})
    return {k: _dec(x, arrays) for k, x in t.items()}


class UnknownType(CodecError):
    """A stored value names a dataclass this process has not registered (not corruption)."""


def _registered(name: str) -> type:
    """The registered class for ``module:QualName``; cirkit's own modules are imported on demand (only those:
    a store's contents never choose which other code gets imported)."""
    cls = _TYPES.get(name)
    if cls is None and isinstance(name, str) and name.startswith("cirkit.") and ":" in name:
        import importlib

        try:
            importlib.import_module(name.split(":", 1)[0])
        except ImportError:
            pass
        cls = _TYPES.get(name)
    if cls is None:
        raise UnknownType(f"stored value has unregistered type {name!r}; import the module that defines it")
    return cls


def _is_array_leaf(t: Any) -> bool:
    return isinstance(t, dict) and "$array" in t and not t.get("scalar")


def _hashable(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def describe(value: Any) -> Any:
    """A JSON view of a config or input for records and reports (not for decoding)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: ("<redacted>" if f.metadata.get("secret") and getattr(value, f.name) else
                         describe(getattr(value, f.name))) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [describe(x) for x in value]
    if isinstance(value, Mapping):
        return {str(k): describe(x) for k, x in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 and arr.dtype.kind in "biuf" else f"<array {arr.dtype} {arr.shape}>"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
