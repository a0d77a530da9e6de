"""The Ray executor against the local one on a CPU-heavy item-mapping stage, in the same run.
``python bench/ray_bench.py [ITEMS]`` (needs the ray extra)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import record  # noqa: E402


def main(n: int = 8000) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per task, so parallelism comes from the executor
    import ray
    from engine_bench import BenchConfig, bench_encode, bench_items

    from cirkit.engine import Engine, Store
    from cirkit.engine.ray_executor import RayExecutor

    config = BenchConfig(n=n, dim=384, work=80)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}})
        for name, executor in (("local", None), ("ray", RayExecutor())):
            engine = Engine(Store(f"{tmp}/{name}"), progress=False, executor=executor)
            items = engine.run(bench_items, config)
            t0 = time.perf_counter()
            out = engine.run(bench_encode, config, items=items)
            times[name] = time.perf_counter() - t0
            times[name + "_content"] = out.content
        ray.shutdown()
    assert times["local_content"] == times["ray_content"], "identical results"
    print(f"{n} items, {os.cpu_count()} CPUs: local {times['local']:.2f}s, ray {times['ray']:.2f}s, "
          f"speed-up {times['local'] / times['ray']:.2f}x (identical content)")
    record(f"Ray executor vs local, CPU-heavy {n:,}-item stage, {os.cpu_count()} CPUs",
           f"{times['ray']:.1f} s vs {times['local']:.1f} s ({times['local'] / times['ray']:.2f}×), identical content")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
