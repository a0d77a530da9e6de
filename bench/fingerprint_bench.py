"""What transitive stage fingerprints cost: every stage of the package fingerprinted cold (ms), and the share
of a ``cirkit run experiments/synthetic.toml --dry-run`` (in process, on a store that holds the run) spent on
them, against the same dry run with the fingerprints already memoised. ``python bench/fingerprint_bench.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rows import record  # noqa: E402

import cirkit  # noqa: E402
from cirkit.engine import Stage, Store, fingerprint  # noqa: E402
from cirkit.experiment.experiment import load_experiment  # noqa: E402
from cirkit.experiment.runner import run_experiment  # noqa: E402


def all_stages() -> list[Stage]:
    found: dict[int, Stage] = {}
    for info in pkgutil.walk_packages(cirkit.__path__, "cirkit."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # an optional extra (ray, torch) that is not installed
            continue
        found.update({id(v): v for v in vars(module).values() if isinstance(v, Stage)})
    return list(found.values())


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cold(fn):
    def run():
        fingerprint.clear_caches()
        fn()
    return run


def main() -> None:
    stages = all_stages()
    n_deps = sorted(len(s.analysis.deps) for s in stages)
    every = best_of(cold(lambda: [s.identity for s in stages]))
    print(f"{len(stages)} stages, {n_deps[0]}-{n_deps[-1]} definitions each (median {n_deps[len(n_deps) // 2]}): "
          f"all fingerprinted cold in {every * 1e3:.0f} ms, memoised {best_of(lambda: [s.identity for s in stages]) * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        exp = load_experiment(str(ROOT / "experiments" / "synthetic.toml"))
        run_experiment(exp, store, progress=False)
        dry = lambda: run_experiment(exp, store, dry_run=True, progress=False)  # noqa: E731
        dry()
        warm_s = best_of(dry)
        cold_s = best_of(cold(dry))
        command = [sys.executable, "-m", "cirkit.cli", "run", "experiments/synthetic.toml", "--dry-run", "--store", tmp]
        cli_s = best_of(lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True), repeats=3)
        demo = load_experiment(str(ROOT / "experiments" / "demo.toml"))
        demo_dry = lambda: run_experiment(demo, Store(tmp + "/empty"), dry_run=True, progress=False)  # noqa: E731
        demo_dry()
        demo_warm, demo_cold = best_of(demo_dry, 3), best_of(cold(demo_dry), 3)
        n_demo = len({s.stage for s in demo_dry()[0].steps})
    print(f"demo dry run on an empty store ({n_demo} stages) in process: {demo_cold * 1e3:.0f} ms with cold "
          f"fingerprints, {demo_warm * 1e3:.0f} ms memoised")
    extra = cold_s - warm_s
    print(f"synthetic dry run in process: {cold_s * 1e3:.0f} ms with cold fingerprints, {warm_s * 1e3:.0f} ms memoised; "
          f"fingerprinting adds {extra * 1e3:.0f} ms = {extra / cli_s:.1%} of the whole `cirkit run "
          f"experiments/synthetic.toml --dry-run` command ({cli_s:.2f} s)")
    record(f"transitive fingerprints: all {len(stages)} stages cold / synthetic dry run's share of the command",
           f"{every:.2f} s / {extra / cli_s:.1%}", "not noticeable")


if __name__ == "__main__":
    main()
