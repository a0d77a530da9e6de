"""A small pipeline for engine tests: a slow, deterministic item-mapping stage between two whole stages."""

import dataclasses
import os
import time

import numpy as np

from cirkit.engine import stage
from cirkit.experiment.pipeline import pipeline


@dataclasses.dataclass(frozen=True)
class ItemsConfig:
    n: int = 40
    prefix: str = "x"


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    dim: int = 4
    scale: float = 1.0
    delay: float = 0.0  # seconds per shard, so that tests can interrupt a run mid-stage


@dataclasses.dataclass(frozen=True)
class SumConfig:
    offset: float = 0.0


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    items: ItemsConfig = ItemsConfig()
    embed: EmbedConfig = EmbedConfig()
    total: SumConfig = SumConfig()


CALLS = {"embed": 0}


def _gate(items) -> None:
    """With ``TOY_GATE=DIR`` and ``TOY_GATE_AFTER=N``: once N items are logged, announce ``DIR/waiting`` and block
    until ``DIR/release`` exists, so that a test can kill the process at a known point (no timing involved)."""
    gate, log = os.environ.get("TOY_GATE"), os.environ.get("TOY_EMBED_LOG")
    if not gate or not log:
        return
    done = len(open(log).read().split()) if os.path.exists(log) else 0
    if done >= int(os.environ.get("TOY_GATE_AFTER", "0")):
        open(os.path.join(gate, "waiting"), "w").close()
        while not os.path.exists(os.path.join(gate, "release")):
            time.sleep(0.01)


@stage(version=1)
def make_items(config: ItemsConfig) -> tuple:
    return tuple(f"{config.prefix}{i:05d}" for i in range(config.n))


@stage(version=1, over="items", shard_size=5, helpers=[_gate])
def embed(config: EmbedConfig, items: tuple) -> np.ndarray:
    CALLS["embed"] += len(items)
    _gate(items)
    if config.delay:
        time.sleep(config.delay)
    pids = os.environ.get("TOY_PID_LOG")
    if pids:
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
    log = os.environ.get("TOY_EMBED_LOG")
    if log:
        with open(log, "a") as f:
            f.write("".join(f"{it}\n" for it in items))
    rows = [np.random.default_rng([ord(c) for c in it]).standard_normal(config.dim) for it in items]
    return (np.stack(rows) * config.scale).astype(np.float32)


@stage(version=1)
def total(config: SumConfig, vectors: np.ndarray) -> dict:
    return {"sum": round(float(vectors.sum()) + config.offset, 6), "n": int(len(vectors))}


@pipeline("toy", ToyConfig)
def toy(engine, config: ToyConfig) -> dict:
    items = engine.run(make_items, config.items)
    vectors = engine.run(embed, config.embed, items=items)
    metrics = engine.run(total, config.total, vectors=vectors)
    return {"vectors": vectors, "metrics": metrics}


@pipeline("toy_twice", ToyConfig)
def toy_twice(engine, config: ToyConfig) -> dict:
    """The same call reached twice with identical inputs: the second is a hit even on a fresh store."""
    items = engine.run(make_items, config.items)
    vectors = engine.run(embed, config.embed, items=items)
    again = engine.run(embed, config.embed, items=items, step="embed_again")
    return {"vectors": again, "metrics": engine.run(total, config.total, vectors=vectors)}
