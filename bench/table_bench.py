"""Peak memory of building and reading CIR-LVLM's training table (the frozen vision states of every training image).

``python bench/table_bench.py prepare STORE`` builds what the table needs into STORE (the built-in world of
``experiments/cir_lvlm.toml``: its train split, its CLIP, the embedded LLM); ``python bench/table_bench.py build
STORE`` then, in a fresh process, computes the ``training_triplets`` stage (a miss: run each measurement on its own
copy of the prepared store, with
TABLE_BENCH_EXPORT naming the prepared store's export folder) and, in a new engine as a training run would, loads the table and reads one epoch of
the trainer's batches of 32. It prints the process's peak RSS after each phase and its CPU seconds. Run it with
another checkout first on PYTHONPATH to measure that version the same way.

``python bench/table_bench.py synthetic STORE MIB stream|whole`` measures the engine alone: a stage returns a
``[rows, 576, 64]`` float32 table of MIB MiB (random, one 256-row block at a time) as an ``ArrayStream`` or as one
array; a new engine then loads it and reads 100 batches of 96 random rows.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np


def usage() -> str:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return f"max RSS {r.ru_maxrss / 1024:.0f} MiB, CPU {r.ru_utime + r.ru_stime:.1f} s"


def bases(store_dir: str):
    from cirkit.engine import Engine, Store
    from cirkit.experiment.experiment import load_experiment
    from cirkit.pipelines.trained import frozen_bases, train_split

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    export = os.environ.get("TABLE_BENCH_EXPORT", os.path.join(store_dir, "export"))  # the prepared one, in keys
    config = load_experiment(os.path.join(here, "experiments", "cir_lvlm.toml"),
                             (f"setup.export.directory={export!r}",)).runs[0].config
    engine = Engine(Store(os.path.join(store_dir, "store")), progress=False)
    _, clip, llm = frozen_bases(engine, config.setup, config.llm)
    split, _ = train_split(engine, config.setup, config.train_data)
    return config, engine, split, llm, clip


def synthetic(store_dir: str, mib: int, how: str) -> None:
    import dataclasses

    from cirkit.engine import ArrayStream, Engine, Store, artifact_type, lazy_fields, stage

    @artifact_type
    @dataclasses.dataclass(frozen=True)
    class Table:
        images: np.ndarray

    lazy_fields(Table, "images")

    rows = mib * 2**20 // (576 * 64 * 4)

    def blocks():
        for i in range(0, rows, 256):
            yield np.random.default_rng(i).standard_normal((min(256, rows - i), 576, 64), dtype=np.float32)

    @stage(version=1, name=f"table_{how}")
    def make(config: None) -> Table:
        return Table(ArrayStream(rows, blocks()) if how == "stream" else np.concatenate(list(blocks())))

    start = time.process_time()
    artifact = Engine(Store(store_dir), progress=False).run(make, None)
    print(f"{how}: {mib} MiB table written ({time.process_time() - start:.1f} CPU s): {usage()}")
    start = time.process_time()
    table = Engine(Store(store_dir), progress=False).load(artifact).images
    rng = np.random.default_rng(0)
    total = sum(float(np.asarray(table[rng.integers(0, rows, 96)]).sum()) for _ in range(100))
    print(f"{how}: loaded as {type(table).__name__}, 100 batches of 96 rows read ({time.process_time() - start:.1f} "
          f"CPU s, checksum {total:.6g}): {usage()}")


def main(phase: str, store_dir: str) -> None:
    import cirkit

    print(f"cirkit from {os.path.dirname(cirkit.__file__)}")
    config, engine, split, llm, clip = bases(store_dir)
    print(f"bases loaded: {usage()}")
    if phase == "prepare":
        return
    from cirkit.engine import Engine, Store
    from cirkit.mllm.data import training_triplets
    from cirkit.training.data import batch_indices, steps_per_epoch

    start = time.process_time()
    triplets = engine.run(training_triplets, config.lvlm.texts, split=split, llm=llm, vision=clip)
    assert engine.steps[-1].status == "computed", engine.steps[-1].status
    print(f"table built ({time.process_time() - start:.1f} CPU s): {usage()}")
    start = time.process_time()
    data = Engine(Store(os.path.join(store_dir, "store")), progress=False).load(triplets)  # as a training run reads
    source = data.source()
    total = 0.0
    for step in range(steps_per_epoch(len(source), 32)):
        total += float(np.asarray(source.batch(batch_indices(0, step, 32, len(source)))["reference"]).sum())
    table = data.images
    print(f"table {type(table).__name__} {table.dtype} {tuple(table.shape)} = "
          f"{np.prod(table.shape) * table.dtype.itemsize / 2**20:.0f} MiB; one epoch of {len(source)} triplets read "
          f"({time.process_time() - start:.1f} CPU s, checksum {total:.6g}): {usage()}")


if __name__ == "__main__":
    if sys.argv[1] == "synthetic":
        synthetic(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2])
