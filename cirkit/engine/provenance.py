"""Versions of Python and of the packages that can change a result: recorded with every artifact, and the
*keyed* ones part of the key of every stage whose code reaches them.

Keyed distributions are those whose upgrade can change the numbers or text a stage produces: array maths
(numpy, jax + jaxlib, flax, optax, ml_dtypes, torch), tokenisation (transformers + tokenizers), search
(scann), image decoding (pillow), model-file conversion (gguf) and repair of model JSON output
(json_repair). Storage and transport (zarr, fsspec, safetensors, httpx), the command line (click, rich) and
executors (ray) are recorded but never keyed: they move bytes, they do not compute values. A stage's key
holds only the keyed distributions its code reaches, so a stage that never touches transformers does not
miss when transformers changes. Another package can be keyed with :func:`key_distribution`. Python itself
is not keyed (cirkit supports one minor version).
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata

__all__ = ["package_versions", "keyed_distributions", "key_distribution", "environment", "installed_version",
           "environment_changes", "clear_caches"]

_PACKAGES = ("cirkit", "numpy", "jax", "jaxlib", "flax", "transformers", "tokenizers", "scann", "zarr",
             "torch", "pillow")

# import name -> the distributions whose versions decide what code under that name computes
_KEYED: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "jax": ("jax", "jaxlib"),
    "jaxlib": ("jaxlib",),
    "flax": ("flax", "jax", "jaxlib"),
    "optax": ("optax", "jax", "jaxlib"),
    "ml_dtypes": ("ml_dtypes",),
    "torch": ("torch",),
    "transformers": ("transformers", "tokenizers"),
    "tokenizers": ("tokenizers",),
    "scann": ("scann",),
    "PIL": ("pillow",),
    "gguf": ("gguf",),
    "json_repair": ("json_repair",),
}
_VERSIONS: dict[str, str | None] = {}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def keyed_distributions(import_name: str) -> tuple[str, ...]:
    """The keyed distributions behind a top-level import name (empty if it is not keyed)."""
    return _KEYED.get(import_name, ())


def key_distribution(import_name: str, *distributions: str) -> None:
    """Make stages that reach ``import_name`` depend on the installed version of ``distributions``."""
    _KEYED[import_name] = tuple(distributions) or (import_name,)


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, None if absent. The one place keys read versions from."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment(distributions: tuple[str, ...]) -> dict[str, str]:
    """``{distribution: version}`` of the installed ones among ``distributions`` (memoised per process)."""
    out = {}
    for dist in distributions:
        if dist not in _VERSIONS:
            _VERSIONS[dist] = installed_version(dist)
        if _VERSIONS[dist] is not None:
            out[dist] = _VERSIONS[dist]
    return out


def environment_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One line per keyed distribution whose version differs ("environment changed: numpy 2.3 → 2.4")."""
    return [f"environment changed: {d} {old.get(d, '(none)')} → {new.get(d, '(none)')}"
            for d in sorted(set(old) | set(new)) if old.get(d) != new.get(d)]


def clear_caches() -> None:
    _VERSIONS.clear()
