"""Experiment files: a TOML file naming a pipeline, its config, and optionally a sweep.

    pipeline = "synthetic_retrieval"     # required: a built-in name or "package.module:attribute"
    name = "synthetic"                   # optional: defaults to the file name
    description = "..."                  # optional
    [gallery]                            # every other table/key is the pipeline's config
    n_items = 2000
    [sweep]                              # optional: a grid, dotted key -> list of values
    "search.k" = [10, 50]

A sweep expands into one run per grid point, named ``NAME/key=value,...``, all sharing one store.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any

from .config import ConfigError, apply_override, build, expand_sweep, parse_override
from .pipeline import Pipeline, UnknownPipeline, get_pipeline

__all__ = ["Experiment", "RunSpec", "load_experiment"]

_RESERVED = ("pipeline", "name", "description", "sweep")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    name: str
    config: Any
    sweep_point: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class Experiment:
    source: str
    name: str
    description: str
    pipeline: Pipeline
    runs: tuple[RunSpec, ...]


def load_experiment(path: str, overrides: tuple[str, ...] = (), *, name: str | None = None) -> Experiment:
    """Read, validate and expand an experiment file; ``overrides`` are ``key=value`` strings (``--set``)."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise ConfigError(f"{source}: experiment file not found")
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the experiment file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: expected UTF-8 text, found byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                          "(experiment files are UTF-8 TOML)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from exc
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML (nested too deeply)") from None
    for key, expected in (("pipeline", str), ("name", str), ("description", str), ("sweep", dict)):
        if key in data and not isinstance(data[key], expected):
            raise ConfigError(f"{source}: key '{key}': expected {expected.__name__}, found {type(data[key]).__name__} {data[key]!r}")
    if "pipeline" not in data:
        raise ConfigError(f"{source}: key 'pipeline': missing; expected the name of a pipeline")
    try:
        pipe = get_pipeline(data["pipeline"])
    except UnknownPipeline as exc:
        raise ConfigError(f"{source}: key 'pipeline': {exc}") from exc
    name = name or data.get("name") or os.path.splitext(os.path.basename(source))[0]
    settings = {k: v for k, v in data.items() if k not in _RESERVED}
    for text in overrides:
        key, value = parse_override(text)
        if key.split(".")[0] in _RESERVED:
            raise ConfigError(f"--set {text!r}: {key.split('.')[0]!r} cannot be overridden")
        settings = apply_override(settings, key, value, source=f"{source} (--set {text})")
    points = expand_sweep(data.get("sweep", {}), source=source)
    runs = []
    for point in points:
        run_settings = settings
        for key, value in point.items():
            run_settings = apply_override(run_settings, key, value, source=f"{source} [sweep]")
        label = ",".join(f"{k}={_short(v)}" for k, v in point.items())
        config = build(pipe.config_type, run_settings, source=source)
        runs.append(RunSpec(f"{name}/{label}" if label else name, config, tuple(point.items())))
    return Experiment(source, name, data.get("description", pipe.description), pipe, tuple(runs))


def _short(value: Any) -> str:
    return str(value).replace("/", "_").replace(" ", "")
