"""Where a name in stage code leads: tracked modules' ASTs indexed by bound name, and static resolution of
names and attribute chains (``m.circo_metrics``, ``mod.sub.CONST``, ``Class.method``) to the top-level
definition they reach, to a tracked module, or to a keyed third-party distribution.

Modules are read from their files, never imported here. Code is *tracked* when it lives in cirkit (except
this engine, whose changes alter every key or none), in the package of the stage being analysed, or in a
package named with :func:`track_package`.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import os
import sys
from collections.abc import Iterator
from typing import Any

from . import provenance

__all__ = ["track_package", "following", "tracked", "module_index", "module_file", "local_imports", "resolve_chain",
           "object_target", "clear_caches"]

_ENGINE = __name__.rpartition(".")[0]  # "cirkit.engine"
_TRACKED: set[str] = {__name__.split(".")[0]}  # "cirkit", and packages named with track_package
_HOME = [""]  # the package of the stage being analysed: followed during that analysis only
_MODULES: dict[str, "_Module | None"] = {}
_FILES: dict[str, str | None] = {}
_RESOLVED: dict[tuple[str, str], tuple | None] = {}


def track_package(module: str | None) -> bool:
    """Follow code in ``module``'s top-level package in every analysis; True if that package is new (the
    resolutions that treated it as opaque are then forgotten; parsed modules are kept)."""
    top = (module or "").split(".")[0]
    if not top or top in _TRACKED:
        return False
    _TRACKED.add(top)
    _RESOLVED.clear()
    return True


@contextlib.contextmanager
def following(module: str | None) -> Iterator[None]:
    """Analyse a stage of ``module``: its own top-level package is followed too, whatever else is imported,
    so a stage's fingerprint never depends on which other packages this process happened to load."""
    previous, _HOME[0] = _HOME[0], (module or "").split(".")[0]
    try:
        yield
    finally:
        _HOME[0] = previous


def clear_caches() -> None:
    for cache in (_MODULES, _FILES, _RESOLVED):
        cache.clear()


@dataclasses.dataclass
class _Module:
    """A tracked module's AST, indexed: top-level definitions (and the statements assigning constants) and
    imports by the name they bind."""

    name: str
    symbols: dict[str, list[ast.AST]]
    imports: dict[str, tuple[str, str | None]]  # bound name -> (absolute module, attribute or None)
    stars: list[str]


def tracked(module: str) -> bool:
    top = module.split(".")[0]
    return (top in _TRACKED or top == _HOME[0]) and not (module == _ENGINE or module.startswith(_ENGINE + "."))


def module_index(name: str, file_hint: str | None = None) -> _Module | None:
    """The index of a tracked module (None for anything else); ``file_hint`` locates a module that is not
    in ``sys.modules`` (a stage's own module imported under another name, as pytest does)."""
    if not tracked(name):
        return None
    if name not in _MODULES or (_MODULES[name] is None and file_hint):
        _MODULES[name] = None
        path = module_file(name) or file_hint
        if path and path.endswith(".py"):
            try:
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
            except (OSError, SyntaxError, UnicodeDecodeError):
                return None
            _MODULES[name] = _index(name, path.endswith("__init__.py"), tree)
    return _MODULES[name]


def module_file(name: str) -> str | None:
    """The source file of a module, found without importing it."""
    if name in _FILES:
        return _FILES[name]
    found = None
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__file__", None):
        found = mod.__file__
    else:
        parent, _, leaf = name.rpartition(".")
        if parent:
            dirs = list(getattr(sys.modules.get(parent), "__path__", []) or [])
            parent_file = module_file(parent)
            if not dirs and parent_file and parent_file.endswith("__init__.py"):
                dirs = [os.path.dirname(parent_file)]
            for d in dirs:
                for candidate in (os.path.join(d, leaf + ".py"), os.path.join(d, leaf, "__init__.py")):
                    if os.path.isfile(candidate):
                        found = candidate
                        break
                if found:
                    break
    _FILES[name] = found
    return found


def _index(name: str, is_package: bool, tree: ast.Module) -> _Module:
    index = _Module(name, {}, {}, [])
    package = name if is_package else name.rpartition(".")[0]

    def visit(statements: list[ast.stmt]) -> None:
        for st in statements:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                index.symbols.setdefault(st.name, []).append(st)
            elif isinstance(st, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            index.symbols.setdefault(n.id, []).append(st)
            elif isinstance(st, (ast.Import, ast.ImportFrom)):
                for bound, spec in _import_bindings(st, package):
                    if spec[1] == "*":
                        index.stars.append(spec[0])
                    else:
                        index.imports[bound] = spec
                        import_nodes.setdefault(bound, []).append(st)
            elif isinstance(st, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(st, field, []))
                for handler in getattr(st, "handlers", []):
                    visit(handler.body)
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
                calls.append(st)

    import_nodes: dict[str, list[ast.stmt]] = {}
    calls: list[ast.Expr] = []
    visit(tree.body)
    for st in calls:  # NAME.method(...) at module level changes what NAME does: `f.defvjp(fwd, bwd)` gives a
        root = st.value.func  # custom-gradient function its backward pass, so f's fingerprint must reach bwd
        while isinstance(root, ast.Attribute):
            root = root.value
        if root is not st.value.func and isinstance(root, ast.Name) and root.id in index.symbols:
            index.symbols[root.id].append(st)
    for bound in set(index.symbols) & set(import_nodes):  # try: import x / except ImportError: x = None
        index.symbols[bound] = import_nodes[bound] + index.symbols[bound]
    return index


def _import_bindings(st: ast.Import | ast.ImportFrom, package: str) -> list[tuple[str, tuple[str, str | None]]]:
    out = []
    if isinstance(st, ast.Import):
        for alias in st.names:
            if alias.asname:
                out.append((alias.asname, (alias.name, None)))
            else:
                top = alias.name.split(".")[0]
                out.append((top, (top, None)))
        return out
    base = st.module or ""
    if st.level:
        parts = package.split(".") if package else []
        parts = parts[: len(parts) - (st.level - 1)] if st.level > 1 else parts
        base = ".".join(parts + ([st.module] if st.module else []))
    for alias in st.names:
        out.append((alias.asname or alias.name, (base, alias.name)))
    return out


def local_imports(imports: list[ast.AST], module: str) -> dict[str, tuple[str, str | None]]:
    """Imports inside a definition (``def f(): from .x import y``) bind names for that definition."""
    if not imports:
        return {}
    path = module_file(module) or ""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: dict[str, tuple[str, str | None]] = {}
    for st in imports:
        found.update(b for b in _import_bindings(st, package) if b[1][1] != "*")
    return found


# A target is ("def", module, name) for a tracked definition, ("module", name) for a tracked module,
# ("ext", distributions) for third-party code whose version is keyed, or None (the standard library,
# builtins, the engine, local variables, third-party code that does not change numbers).
def resolve_chain(module: str, chain: list[str], local_imports: dict) -> tuple | None:
    first, *attrs = chain
    if first in local_imports:
        target = _import_target(*local_imports[first])
    else:
        target = _resolve(module, first)
    for attr in attrs:
        if target is None or target[0] != "module":
            break
        target = _module_attribute(target[1], attr)
    return target


def _resolve(module: str, name: str, depth: int = 0) -> tuple | None:
    key = (module, name)
    if key in _RESOLVED:
        return _RESOLVED[key]
    index = module_index(module)
    found = None
    if index is None or depth > 16:
        return None
    if name in index.symbols:
        found = ("def", module, name)
    elif name in index.imports:
        found = _import_target(*index.imports[name], depth=depth + 1)
    else:
        for star in index.stars:
            found = _resolve(star, name, depth + 1) if tracked(star) else None
            if found is not None:
                break
    _RESOLVED[key] = found
    return found


def _import_target(module: str, attr: str | None, depth: int = 0) -> tuple | None:
    if not tracked(module):
        if module == _ENGINE or module.startswith(_ENGINE + "."):
            return None
        return _external(module)
    if attr is None:
        return ("module", module)
    return _module_attribute(module, attr, depth)


def _module_attribute(module: str, attr: str, depth: int = 0) -> tuple | None:
    found = _resolve(module, attr, depth)
    if found is not None:
        return found
    sub = f"{module}.{attr}"
    if tracked(sub) and module_file(sub) is not None:
        return ("module", sub)
    return None


def _external(module: str) -> tuple | None:
    packages = provenance.keyed_distributions(module.split(".")[0])
    return ("ext", packages) if packages else None


def object_target(value: Any) -> tuple | None:
    """A closure value: a tracked top-level definition, or the keyed packages of third-party code."""
    value = inspect.unwrap(value) if callable(value) else value
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", "")
    if not isinstance(module, str) or not (inspect.isfunction(value) or inspect.isclass(value)):
        return None
    if tracked(module):
        return ("def", module, qualname.split(".")[0]) if "<" not in qualname else None
    return _external(module)
