"""Code fingerprints: a digest of what a stage's code *does*, following everything that code reaches.

A stage is fingerprinted **transitively**: its own function, and every function, class (with its methods)
and module-level constant that its code names — bare names and attribute chains such as ``m.circo_metrics``
or ``mod.sub.CONST``, including type annotations and function-local imports — resolved statically against
the normalised AST of the module that holds it, recursively, memoised per process, cycles included.
Code is followed inside cirkit (except this engine, whose changes alter every key or none) and inside the
package that defines the stage (a user's own package). Third-party code is not read: the keyed
distributions it belongs to (see :mod:`.provenance`) enter the key by their installed version instead.

Each definition is digested from its AST serialised with node names and non-empty fields only, so
docstrings, comments and formatting drop out (and so do the root stage's decorators: its ``version`` is
part of the identity on its own), together with where each of its names leads. The stage's digest covers
every definition reached by name (relative to the stage's own module), so swapping two definitions between
modules, or importing another function under the same name, changes it. Never bytecode, never pickle. What a static reading cannot see (a function picked at run time from a value the
code never names) must be declared with ``helpers=``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

from . import code_names as names
from . import provenance

__all__ = ["CodeAnalysis", "analyse", "code_fingerprint", "source_fingerprint", "short_deps", "code_changes",
           "track_package", "clear_caches", "FingerprintError"]


class FingerprintError(ValueError):
    """The source of a stage or helper cannot be read."""


@dataclasses.dataclass(frozen=True)
class CodeAnalysis:
    """A stage's code fingerprint and what went into it (kept in records to explain a miss)."""

    digest: str
    deps: dict[str, str]  # "module.name" -> digest of that definition alone (the stage itself included)
    packages: tuple[str, ...]  # keyed third-party distributions the code reaches, sorted


# ---------------------------------------------------------------------------------------------- public API
def source_fingerprint(source: str) -> str:
    """Digest of normalised Python source text."""
    return _sha(_scan(ast.parse(textwrap.dedent(source)), [], [], strip_decorators=True))


def code_fingerprint(fn: Callable[..., Any], helpers: Iterable[Any] = ()) -> str:
    """Digest of ``fn``'s code, of the declared ``helpers`` and of everything either reaches."""
    return analyse(fn, helpers).digest


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function or class, the name the analysis gives its definition."""
    obj = inspect.unwrap(obj)
    return f"{obj.__module__}.{obj.__qualname__}"


def analyse(fn: Callable[..., Any], helpers: Iterable[Any] = (), opaque: Iterable[Any] = ()) -> CodeAnalysis:
    """Follow ``fn`` and ``helpers`` through the code they name; memoised per process. ``opaque`` definitions
    are boundaries: their names count, their code (and what it reaches) does not."""
    helpers = tuple(helpers)
    opaque = frozenset(qualified_name(o) for o in opaque)
    memo_key = (fn, helpers, opaque)
    try:
        found = _ANALYSES.get(memo_key)
    except TypeError:  # an unhashable helper: analyse without memo
        found, memo_key = None, None
    if found is not None:
        return found
    home = getattr(inspect.unwrap(fn), "__module__", None) or "?"
    with names.following(home):
        analysis = _analyse(fn, helpers, home, opaque)
    if memo_key is not None:
        _ANALYSES[memo_key] = analysis
    return analysis


def _analyse(fn: Callable[..., Any], helpers: tuple, home: str, opaque: frozenset = frozenset()) -> CodeAnalysis:
    roots = [_object_node(fn, strip_decorators=True)] + [_object_node(h, strip_decorators=False) for h in helpers]
    deps = {r.name: r.digest for r in reversed(roots)}
    packages = set().union(*(r.packages for r in roots))
    todo = [ref for r in roots for ref in r.refs]
    while todo:  # breadth of the whole reachable graph; a visited name is never expanded twice (cycles)
        ref = todo.pop()
        name = f"{ref[0]}.{ref[1]}"
        if name in opaque:
            deps[name] = "opaque"
            continue
        if name in deps or (node := _definition(*ref)) is None:
            continue
        deps[name] = node.digest
        packages |= node.packages
        todo += node.refs
    # Names are part of the digest (which definition a name leads to matters as much as the texts), written
    # relative to the stage's own module so that the same stage under another module name keeps its key.
    lines = sorted(f"{_relative(n, home)}={d}" for n, d in deps.items())
    body = [*lines, *sorted(packages)]
    return CodeAnalysis(_sha("\n".join(body)), deps, tuple(sorted(packages)))


def _relative(name: str, home: str) -> str:
    return "." + name[len(home) + 1:] if name.startswith(home + ".") else name


def short_deps(deps: dict[str, str]) -> dict[str, str]:
    """Per-definition digests cut to 16 hex digits: enough to tell which one changed, small in records."""
    return {name: d[:16] for name, d in sorted(deps.items())}


def code_changes(old: dict[str, str] | None, new: dict[str, str]) -> list[str]:
    """Why two code fingerprints differ, one line per definition ("code changed: cirkit.x.f")."""
    if not old:
        return ["stage code changed"]
    lines = [f"code changed: {n}" for n in sorted(set(old) & set(new)) if old[n][:16] != new[n][:16]]
    lines += [f"code added: {n}" for n in sorted(set(new) - set(old))]
    lines += [f"code removed: {n}" for n in sorted(set(old) - set(new))]
    return lines or ["stage code changed"]


def track_package(module: str | None) -> None:
    """Follow code inside ``module``'s top-level package in every analysis (a stage's own package always is):
    for a library of your own that stages in another package call."""
    if names.track_package(module):  # earlier analyses treated this package as opaque
        _ANALYSES.clear()
        _DEFINITIONS.clear()


def clear_caches() -> None:
    """Forget every memoised analysis (tests; a package newly tracked)."""
    for cache in (_ANALYSES, _DEFINITIONS):
        cache.clear()
    names.clear_caches()
    provenance.clear_caches()


_ANALYSES: dict[Any, CodeAnalysis] = {}
_DEFINITIONS: dict[tuple[str, str], "_Node | None"] = {}


# ---------------------------------------------------------------------------------------------- nodes
@dataclasses.dataclass(frozen=True)
class _Node:
    """One definition: its name, the digest of its normalised AST, what it names, the packages it reaches."""

    name: str
    digest: str
    refs: frozenset[tuple[str, str]]  # (module, top-level name) of tracked definitions
    packages: frozenset[str]


def _definition(module: str, name: str) -> _Node | None:
    key = (module, name)
    if key not in _DEFINITIONS:
        _DEFINITIONS[key] = None
        index = names.module_index(module)
        nodes = index.symbols.get(name) if index else None
        if nodes:
            _DEFINITIONS[key] = _make_node(f"{module}.{name}", nodes, module)
    return _DEFINITIONS[key]


def _make_node(name: str, nodes: list[ast.AST], module: str, closure: Iterable[Any] = (),
               strip_decorators: bool = False) -> _Node:
    refs: set[tuple[str, str]] = set()
    packages: set[str] = set()
    texts = []
    edges: set[str] = set()  # where each name leads: the same text importing another g is other code

    def reach(label: str, target: tuple | None) -> None:
        if target is not None and target[0] == "def":
            refs.add((target[1], target[2]))
            edges.add(f"{label}>{_relative(f'{target[1]}.{target[2]}', module)}")
        elif target is not None and target[0] == "ext":
            packages.update(target[1])

    for node in nodes:
        chains: list[list[str]] = []
        imports: list[ast.AST] = []
        texts.append(_scan(node, chains, imports, strip_decorators))
        local_imports = names.local_imports(imports, module)
        chains += [[bound] for bound in local_imports]  # what an import inside the definition binds is reached
        for chain in chains:
            reach(".".join(chain), names.resolve_chain(module, chain, local_imports))
    for value in closure:  # nonlocal functions and classes of a nested stage
        reach("<closure>", names.object_target(value))
    return _Node(name, _sha("\n".join(texts + sorted(edges))), frozenset(refs), frozenset(packages))


def _object_node(obj: Any, *, strip_decorators: bool) -> _Node:
    """The node of a stage function or declared helper, found in its module's AST by qualified name."""
    target = inspect.unwrap(obj)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or repr(target)
    index = names.module_index(module, getattr(target, "__globals__", {}).get("__file__"))
    node = _find(index, qualname, target) if index else None
    if node is None:
        try:
            source = inspect.getsource(target)
            node = ast.parse(textwrap.dedent(source)).body[0]
        except (OSError, TypeError, SyntaxError, IndexError) as exc:
            raise FingerprintError(
                f"cannot read the source of {module}.{qualname} to fingerprint it ({exc}); stages and their "
                "helpers must be defined in .py files"
            ) from exc
    try:
        closure = inspect.getclosurevars(target).nonlocals.values() if inspect.isfunction(target) else ()
    except ValueError:  # a cell not filled yet
        closure = ()
    return _make_node(f"{module}.{qualname}", [node], module, closure, strip_decorators)


def _find(index: Any, qualname: str, target: Any) -> ast.AST | None:
    if "<" in qualname:  # nested in a function or a lambda: read by inspect
        return None
    first, *rest = qualname.split(".")
    candidates = [n for n in index.symbols.get(first, []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    line = getattr(getattr(target, "__code__", None), "co_firstlineno", None)
    if line is not None and not rest and len(candidates) > 1:
        candidates = [n for n in candidates if _first_line(n) == line] or candidates
    node = candidates[-1] if candidates else None
    for part in rest:
        body = getattr(node, "body", [])
        node = next((n for n in reversed(body) if getattr(n, "name", None) == part), None)
    return node


def _first_line(node: ast.AST) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


# ---------------------------------------------------------------------------------------------- AST text
def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and type(body[0]) is ast.Expr and type(body[0].value) is ast.Constant and isinstance(body[0].value.value, str):
        return body[1:] or [ast.Pass()]
    return body


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SKIPPED_FIELDS = frozenset({"type_comment", "kind", "ctx"})  # ctx follows from the position


def _scan(node: ast.AST, chains: list[list[str]], imports: list[ast.AST], strip_decorators: bool = False,
          in_chain: bool = False) -> str:
    """Serialise a definition's normalised AST (docstrings dropped) and collect, in the same pass, the
    name chains it reads (``a``, ``a.b.c``) and the import statements inside it."""
    kind = type(node)
    if kind is ast.Name and not in_chain:
        chains.append([node.id])
    elif kind is ast.Attribute and not in_chain:
        attrs, cur = [], node
        while type(cur) is ast.Attribute:
            attrs.append(cur.attr)
            cur = cur.value
        if type(cur) is ast.Name:
            chains.append([cur.id, *reversed(attrs)])
            in_chain = True
    elif kind is ast.Import or kind is ast.ImportFrom:
        imports.append(node)
    fields = []
    for name in node._fields:
        value = getattr(node, name, None)
        if value is None or value == [] or name in _SKIPPED_FIELDS:
            continue
        if name == "body" and kind in _BODIED:
            value = _without_docstring(value)
        elif name == "decorator_list" and strip_decorators:
            continue
        if isinstance(value, ast.AST):
            text = _scan(value, chains, imports, False, in_chain and kind is ast.Attribute)
        elif isinstance(value, list):
            text = "[" + ",".join(_scan(v, chains, imports, False, False) if isinstance(v, ast.AST) else repr(v)
                                  for v in value) + "]"
        else:
            text = repr(value)
        fields.append(f"{name}={text}")
    return f"{kind.__name__}({','.join(fields)})"


_BODIED = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module})


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
