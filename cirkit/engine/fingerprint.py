"""Code fingerprints: a digest of what a function *does*, not how its source is laid out.

The source is parsed to an AST; docstrings, decorators, comments and formatting drop out, and the tree is
serialised with node names and non-empty fields only (so fields that newer Pythons add with empty defaults
do not change the digest). Never bytecode, never pickle.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["code_fingerprint", "source_fingerprint", "FingerprintError"]


class FingerprintError(ValueError):
    """The source of a stage or helper cannot be read."""


def source_fingerprint(source: str) -> str:
    """Digest of normalised Python source text."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(_serialise(tree).encode()).hexdigest()


def code_fingerprint(fn: Callable[..., Any], helpers: Iterable[Any] = ()) -> str:
    """Digest of ``fn``'s normalised source and of each declared helper's (functions or classes)."""
    parts = [_object_fingerprint(fn)]
    parts += sorted(f"{getattr(h, '__qualname__', '?')}={_object_fingerprint(h)}" for h in helpers)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _object_fingerprint(obj: Any) -> str:
    target = inspect.unwrap(obj)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as exc:
        raise FingerprintError(
            f"cannot read the source of {_name(obj)} to fingerprint it ({exc}); stages and their helpers "
            "must be defined in .py files"
        ) from exc
    return source_fingerprint(source)


def _serialise(node: Any) -> str:
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or value == []:
                continue
            if name in ("type_comment", "kind"):
                continue
            fields.append(f"{name}={_serialise(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(_serialise(x) for x in node) + "]"
    return repr(node)
