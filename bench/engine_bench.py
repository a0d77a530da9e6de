"""Engine overheads: cache lookup cost per item, and a no-change rerun against the cold run.

Run with ``nox -s bench`` (or ``python bench/engine_bench.py [N]``). The stage under test does real work
per item (a small two-layer network on each item, about what a CPU text encoder costs per short text),
so "cold" is an honest reference; every number is a ratio or a per-item cost measured in this process.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from cirkit.engine import Engine, Store, digest, stage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rows import record  # noqa: E402


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    n: int = 10_000
    dim: int = 256
    work: int = 3  # layers per item


@stage(version=1)
def bench_items(config: BenchConfig) -> tuple[str, ...]:
    return tuple(f"item-{i:07d}" for i in range(config.n))


@stage(version=1, over="items", shard_size=500)
def bench_encode(config: BenchConfig, items: tuple[str, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((config.dim, config.dim)).astype(np.float32) / 16 for _ in range(config.work)]
    out = []
    for item in items:  # per item, as an encoder without batching would
        x = np.random.default_rng([ord(c) for c in item]).standard_normal(config.dim).astype(np.float32)
        for w in weights:
            x = np.tanh(x @ w)
        out.append(x)
    return np.stack(out)


@stage(version=1)
def bench_reduce(config: BenchConfig, vectors: np.ndarray) -> dict:
    return {"mean": float(vectors.mean()), "n": int(len(vectors))}


def pipeline(store: Store, config: BenchConfig) -> tuple[float, Engine]:
    start = time.perf_counter()
    engine = Engine(store, progress=False)
    items = engine.run(bench_items, config)
    vectors = engine.run(bench_encode, config, items=items)
    _ = engine.run(bench_reduce, config, vectors=vectors).value
    return time.perf_counter() - start, engine


def main(n: int) -> None:
    root = tempfile.mkdtemp(prefix="cirkit-bench-")
    try:
        store = Store(root)
        config = BenchConfig(n=n)
        cold, engine = pipeline(store, config)
        warm, engine2 = pipeline(store, config)
        assert all(s.status == "hit" for s in engine2.steps)

        # Item-level resolution: drop the stage-level record so every item is looked up in its shard index.
        encode_key = next(s.key for s in engine.steps if s.stage == "bench_encode")
        store.fs.remove(store.record_path(encode_key))
        reduce_key = next(s.key for s in engine.steps if s.stage == "bench_reduce")
        store.fs.remove(store.record_path(reduce_key))
        item_level, engine3 = pipeline(store, config)
        step = next(s for s in engine3.steps if s.stage == "bench_encode")
        assert step.items_cached == n

        # The lookup alone: digest every item and find it in the namespace's shard index.
        items = store.get_value(engine.steps[0].output)
        namespace = store.get_record(encode_key)["namespace"] if store.get_record(encode_key) else None
        t0 = time.perf_counter()
        index = store.item_index(namespace)
        hits = sum(1 for it in items if digest(it) in index)
        lookup = time.perf_counter() - t0
        assert hits == n

        print(f"cirkit engine bench: {n} items, stage cost {cold / n * 1e3:.3f} ms/item cold")
        print(f"{'measure':<48}{'value':>14}{'goal':>12}")
        print(f"{'cold run (s)':<48}{cold:>14.3f}")
        print(f"{'no-change rerun (s)':<48}{warm:>14.4f}")
        print(f"{'no-change rerun / cold':<48}{warm / cold:>13.2%}{'<= 2%':>12}")
        print(f"{'cache lookup per item (us)':<48}{lookup / n * 1e6:>14.1f}{'<= 50':>12}")
        print(f"{'item-level rerun incl. assembly, per item (us)':<48}{item_level / n * 1e6:>14.1f}")
        print(f"{'item-level rerun / cold':<48}{item_level / cold:>13.2%}")
        record(f"cache lookup per item ({n:,}-item stage)", f"{lookup / n * 1e6:.1f} µs", "≤ 50 µs")
        record(f"no-change rerun / cold run ({n:,}-item stage)", f"{warm / cold:.2%}", "≤ 2 %")
        record("item-level rerun (stage record deleted) / cold run", f"{item_level / cold:.1%}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
