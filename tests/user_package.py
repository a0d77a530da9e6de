"""A user's own package written to tmp (stages in one module, helpers in others) for the key tests."""

import importlib
import textwrap
import uuid

import pytest

from cirkit.engine import Engine, fingerprint

HELPERS = '''
import numpy as np

SCALE = 2.0


class Scaler:
    def apply(self, x):
        return x * SCALE


def ping(n):
    return 0 if n <= 0 else pong(n - 1)


def pong(n):
    return ping(n)


def total(xs):
    return float(np.sum(xs))
'''

STAGES = '''
import dataclasses

from cirkit.engine import stage
from cirkit.experiment.pipeline import pipeline

from . import helpers as h


@stage(version=1)
def scaled(config, x):
    return h.Scaler().apply(x) + h.ping(3)


@stage(version=1)
def counted(config, x):
    from .numbers import FACTOR

    return x * FACTOR


@stage(version=1)
def plain(config, x):
    return x + 1


@stage(version=1)
def summed(config, x):
    return h.total([x, x])


def double(x):
    return x * 2


def triple(x):
    return x * 3


@stage(version=1)
def dispatch(config, x):
    return globals()["tri" + "ple"](x)


@stage(version=1, helpers=[double, triple])
def dispatch_declared(config, x):
    return globals()["tri" + "ple"](x)


@dataclasses.dataclass(frozen=True)
class Config:
    x: float = 1.0


@pipeline(__name__, Config)
def pipe(engine, config):
    return {n: engine.run(globals()[n], None, x=config.x) for n in ("scaled", "counted", "plain", "summed")}
'''

NAMES = ["scaled", "counted", "plain", "summed", "dispatch", "dispatch_declared"]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh package (unique name) in tmp, importable; returns (name, folder, stages module)."""
    name = f"userpkg_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "helpers.py").write_text(textwrap.dedent(HELPERS))
    (folder / "numbers.py").write_text("FACTOR = 3\n")
    (folder / "stages.py").write_text(textwrap.dedent(STAGES))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{name}.stages")
    yield name, folder, module
    fingerprint.clear_caches()


def run_all(store, module, dry_run=False):
    engine = Engine(store, dry_run=dry_run, progress=False)
    for n in NAMES:
        engine.run(getattr(module, n), None, x=1.0)
    return {s.step: s for s in engine.steps}


def edit(folder, file, old, new):
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    fingerprint.clear_caches()
