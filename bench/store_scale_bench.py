"""The store at a million items: per-item caching of a 1M-image gallery's embeddings and of a 1M-request
model-call stage with small JSON answers.

For each: the cold run, the files it created (and what ``cirkit gc`` leaves of them), a no-change rerun
(goal <= 2 % of cold), loading the output, the cache lookup per item (digest every item and find it in the
namespace's shard index), the item-level re-resolution (the stage record deleted, so every item is found in
its shard) and a rerun with 1 % new items; the last three after gc. The stages use the shard
sizes of the real ones (``embed_images`` and ``chat``) and do almost no work per item, so "cold" is mostly
the engine's own cost and the rerun ratio is a harder test than with a real encoder or server.

``python bench/store_scale_bench.py [--n 1000000] [--only embeddings|answers] [--dim 512]``; the store is a
temporary folder (about 1.2 GB at 1M) removed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from rows import record  # noqa: E402

from cirkit.encoders.stages import embed_images  # noqa: E402
from cirkit.engine import Engine, Store, stage  # noqa: E402
from cirkit.engine.maintenance import collect_garbage  # noqa: E402
from cirkit.models.stages import chat  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ItemsConfig:
    n: int = 1_000_000


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    dim: int = 512


@stage(version=1)
def scale_items(config: ItemsConfig) -> tuple[str, ...]:
    return tuple(f"images/{i // 1000:04d}/img-{i:07d}.jpg" for i in range(config.n))


@stage(version=1, over="items", shard_size=embed_images.shard_size)
def scale_embed(config: ScaleConfig, items: tuple[str, ...]) -> np.ndarray:
    """A float16 vector per item (storage_dtype float16, as a 1M gallery would be kept), from its index."""
    rows = np.array([int(it[-11:-4]) for it in items], dtype=np.float32)
    basis = np.linspace(-1, 1, config.dim, dtype=np.float32)
    return np.sin(rows[:, None] * 1e-3 + basis[None, :]).astype(np.float16)


@stage(version=1, over="items", shard_size=chat.shard_size)
def scale_answer(config: ScaleConfig, items: tuple[str, ...]) -> tuple[dict, ...]:
    """A small JSON answer per request, as a verifier returns (each one distinct, so nothing deduplicates)."""
    return tuple({"text": f"yes, {it[-15:-4]} shows it", "tokens": 5, "model": "bench"} for it in items)


@stage(version=1)
def scale_count(config: ScaleConfig, outputs: object) -> int:
    return len(outputs)


def files_under(root: str) -> tuple[int, int]:
    count = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            count += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return count, size


def pipeline(store: Store, mapper, n: int, config: ScaleConfig, load: bool = False) -> tuple[float, list]:
    """Seconds and steps of one run; the engine (and the output it holds in memory) is dropped."""
    start = time.perf_counter()
    engine = Engine(store, progress=False)
    items = engine.run(scale_items, ItemsConfig(n))
    out = engine.run(mapper, config, items=items)
    engine.run(scale_count, config, outputs=out)
    if load:
        _ = out.value
    return time.perf_counter() - start, engine.steps


def measure(kind: str, mapper, n: int, dim: int) -> list[tuple[str, str, str]]:
    root = tempfile.mkdtemp(prefix=f"cirkit-scale-{kind}-")
    try:
        store = Store(root)
        config = ScaleConfig(dim=dim)
        t0 = time.perf_counter()
        Engine(store, progress=False).run(scale_items, ItemsConfig(n))  # the item list, outside the cold run
        t_items = time.perf_counter() - t0
        files_before, _ = files_under(root)
        cold, steps = pipeline(store, mapper, n, config)  # the item list is a hit here
        print(f"{kind}: cold run {cold:.0f} s", flush=True)
        files, size = files_under(root)
        warm, steps2 = pipeline(store, mapper, n, config)
        assert all(s.status == "hit" for s in steps2)
        warm_load, _ = pipeline(store, mapper, n, config, load=True)
        # what `cirkit gc` leaves: a packed output no longer needs the small shards it was assembled from
        store.put_run("scale", {"artifacts": [s.key for s in steps]})
        t0 = time.perf_counter()
        collect_garbage(store, dry_run=False, grace_seconds=0)
        t_gc = time.perf_counter() - t0
        files_gc, size_gc = files_under(root)

        step = next(s for s in steps if s.stage == mapper.name)
        namespace = store.get_record(step.key)["namespace"]
        items = store.get_value(steps[0].output)
        t0 = time.perf_counter()
        index = store.item_index(namespace)
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = sum(1 for it in items if mapper.item_digest(it) in index)
        t_probe = time.perf_counter() - t0
        assert hits == n, (hits, n)
        del index, items

        for s in steps[1:]:
            store.fs.remove(store.record_path(s.key))
        print(f"{kind}: index read {t_index:.0f} s", flush=True)
        item_level, steps3 = pipeline(store, mapper, n, config)
        print(f"{kind}: item-level rerun {item_level:.0f} s", flush=True)
        assert next(s for s in steps3 if s.stage == mapper.name).items_cached == n

        grown = n + n // 100
        Engine(store, progress=False).run(scale_items, ItemsConfig(grown))
        t_grow, steps4 = pipeline(store, mapper, grown, config)
        grow_step = next(s for s in steps4 if s.stage == mapper.name)
        new_items = grow_step.items_total - (grow_step.items_cached or 0)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    shards = -(-n // mapper.shard_size)
    what = (f"store at {n:,} items, {kind} ({shards:,} shards of {mapper.shard_size}"
            + (f", {dim}-d float16 rows)" if kind == "embeddings" else ", small JSON answers)"))
    record(f"{what}: cold run / files created", f"{cold:,.0f} s / {files - files_before:,} files, "
           f"{size / 2**20:,.0f} MiB")
    record(f"{what}: files after `cirkit gc` (the small shards a packed output no longer needs removed)",
           f"{files_gc:,} files, {size_gc / 2**20:,.0f} MiB")
    record(f"{what}: no-change rerun / cold", f"{warm:.3f} s = {warm / cold:.2%}", "≤ 2 %")
    record(f"{what}: loading the output (a downstream stage's first step)", f"{warm_load:.1f} s")
    record(f"{what}: cache lookup per item (read the shard index, probe every item)",
           f"{(t_index + t_probe) / n * 1e6:.1f} µs", "≤ 50 µs")
    record(f"{what}: item-level rerun (records deleted) / cold; 1 % more items / cold",
           f"{item_level / cold:.0%}; {t_grow / cold:.0%}")
    return [
        (f"{kind}: cold run, {n:,} items in {shards:,} shards of {mapper.shard_size} (s)", f"{cold:.1f}", ""),
        (f"{kind}: engine cost per item cold (us)", f"{cold / n * 1e6:.0f}", ""),
        (f"{kind}: files created / bytes", f"{files - files_before:,} / {size / 2**20:,.0f} MiB", ""),
        (f"{kind}: files after `cirkit gc` / gc time (s)", f"{files_gc:,} / {size_gc / 2**20:,.0f} MiB / {t_gc:.0f}", ""),
        (f"{kind}: no-change rerun (s)", f"{warm:.3f}", ""),
        (f"{kind}: no-change rerun / cold", f"{warm / cold:.2%}", "<= 2%"),
        (f"{kind}: no-change rerun loading the output (s)", f"{warm_load:.1f}", ""),
        (f"{kind}: shard index of the namespace, read (s)", f"{t_index:.1f}", ""),
        (f"{kind}: cache lookup per item incl. index (us)", f"{(t_index + t_probe) / n * 1e6:.1f}", "<= 50"),
        (f"{kind}: item-level rerun (records deleted) / cold", f"{item_level / cold:.1%}", ""),
        (f"{kind}: 1% more items: new items computed / rerun / cold",
         f"{new_items:,} / {t_grow:.1f} s / {t_grow / cold:.1%}", ""),
        ("(the item list itself, stored once) (s)", f"{t_items:.1f}", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--only", choices=["embeddings", "answers"])
    args = parser.parse_args()
    print(describe())
    rows = []
    if args.only in (None, "embeddings"):
        rows += measure("embeddings", scale_embed, args.n, args.dim)
    if args.only in (None, "answers"):
        rows += measure("answers", scale_answer, args.n, args.dim)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"cirkit store at scale: {args.n:,} items, dim {args.dim} float16 embeddings, peak RSS {peak:,.0f} MiB")
    print(f"{'measure':<72}{'value':>24}{'goal':>8}")
    for name, value, goal in rows:
        print(f"{name:<72}{value:>24}{goal:>8}")


if __name__ == "__main__":
    main()
