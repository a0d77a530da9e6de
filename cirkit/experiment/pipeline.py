"""Pipelines: named compositions of stages with one frozen config dataclass.

A pipeline function receives an :class:`~cirkit.engine.Engine` and its config, calls stages through
``engine.run`` and returns its named outputs (artifacts). It only wires artifacts together and never
looks at values, so the same function serves real runs and dry runs. An output named ``metrics``
(a mapping of metric name to number, possibly nested one level by task) is printed as the results table.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["Pipeline", "pipeline", "get_pipeline", "PIPELINES", "UnknownPipeline"]

PIPELINES: dict[str, "Pipeline"] = {}


class UnknownPipeline(LookupError):
    pass


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    config_type: type
    build: Callable[..., dict[str, Any]]
    description: str = ""


def pipeline(name: str, config: type) -> Callable[[Callable[..., dict[str, Any]]], Pipeline]:
    """Register ``fn(engine, config) -> {output name: artifact}`` as the pipeline ``name``."""

    def wrap(fn: Callable[..., dict[str, Any]]) -> Pipeline:
        if name in PIPELINES and PIPELINES[name].build is not fn:
            raise ValueError(f"pipeline {name!r} is registered twice")
        p = Pipeline(name, config, fn, (fn.__doc__ or "").strip().split("\n")[0])
        PIPELINES[name] = p
        return p

    return wrap


def get_pipeline(name: str) -> Pipeline:
    """A built-in pipeline by name, or ``package.module:attribute`` for one defined outside cirkit."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownPipeline(f"cannot import pipeline {name!r}: {exc}") from exc
        if not isinstance(found, Pipeline):
            raise UnknownPipeline(f"{name!r} is not a pipeline (decorate it with @pipeline)")
        return found
    importlib.import_module("cirkit.pipelines")
    if name not in PIPELINES:
        raise UnknownPipeline(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES)) or 'none'}")
    return PIPELINES[name]
