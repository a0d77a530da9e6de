"""Versions of Python and of the packages that can change a result, recorded with every artifact."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

__all__ = ["package_versions"]

_PACKAGES = ("cirkit", "numpy", "jax", "jaxlib", "flax", "transformers", "tokenizers", "scann", "zarr",
             "torch", "pillow")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
