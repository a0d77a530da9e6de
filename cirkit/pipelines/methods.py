"""Registers the methods' pipelines. Each method lives in its own home, ``cirkit/methods/<name>/`` (its
stages, its composition in ``pipeline.py`` and its prompts side by side); this module only imports them.
Names such as ``ImageScopeConfig`` stay importable from here for older code."""

from __future__ import annotations

import importlib

METHODS = ("cirevl", "osrcir", "imagescope", "ldre")  # cirkit.methods.<name>.pipeline registers <name>

for _name in METHODS:  # a module already being imported (a method imported first) is left to finish
    importlib.import_module(f"cirkit.methods.{_name}.pipeline")

_HOMES = {"CIReVLConfig": "cirevl", "cirevl": "cirevl", "OSrCIRConfig": "osrcir", "osrcir": "osrcir",
          "ImageScopeConfig": "imagescope", "imagescope": "imagescope", "LDREConfig": "ldre", "ldre": "ldre"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"cirkit.methods.{_HOMES[name]}.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
