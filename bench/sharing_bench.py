"""Push/pull throughput against a loopback S3 server (moto), and how the cost of `cirkit diff` grows with the
number of queries. ``python bench/sharing_bench.py``."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import record  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(store: str, name: str, n_items: int, n_queries: int, noise: float = 0.8) -> None:
    from cirkit.engine import Store
    from cirkit.experiment.experiment import load_experiment
    from cirkit.experiment.runner import run_experiment

    exp = Path(tempfile.mkdtemp()) / "e.toml"
    exp.write_text(f'pipeline = "synthetic_retrieval"\nname = "{name}"\n[gallery]\nn_items = {n_items}\n'
                   f'[queries]\nn_queries = {n_queries}\n[encoder]\nnoise = {noise}\ndim = 512\n')
    run_experiment(load_experiment(str(exp)), Store(store), progress=False)


def main() -> None:
    from moto.server import ThreadedMotoServer

    from cirkit.engine import Store
    from cirkit.engine.sharing import pull_run, push_run
    from cirkit.experiment.diff import diff_runs

    port = _port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
                       "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"})
    import boto3

    boto3.client("s3").create_bucket(Bucket="bench")
    with tempfile.TemporaryDirectory() as tmp:
        _run(f"{tmp}/a", "big", 20_000, 1000)
        t0 = time.perf_counter()
        up = push_run(Store(f"{tmp}/a"), Store("s3://bench/store"), "big")
        push_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = push_run(Store(f"{tmp}/a"), Store("s3://bench/store"), "big")
        repush_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        down = pull_run(Store("s3://bench/store"), Store(f"{tmp}/b"), "big")
        pull_s = time.perf_counter() - t0
        print(f"push: {up.files} files, {up.bytes / 2**20:.1f} MiB in {push_s:.2f}s = {up.bytes / 2**20 / push_s:.1f} MiB/s")
        print(f"re-push (nothing missing): {again.files} file(s), {again.skipped} skipped, {repush_s:.2f}s")
        print(f"pull (verified): {down.files} files, {down.bytes / 2**20:.1f} MiB in {pull_s:.2f}s = "
              f"{down.bytes / 2**20 / pull_s:.1f} MiB/s")
        record(f"push / verified pull to loopback S3 (moto), {up.bytes / 2**20:.1f} MiB run",
               f"{up.bytes / 2**20 / push_s:.1f} / {down.bytes / 2**20 / pull_s:.1f} MiB/s; re-push sends "
               f"{again.files} file{'s' if again.files != 1 else ''}")
        print(f"{'queries':>8}{'diff (s)':>10}{'per query (ms)':>16}")
        diff_s = {}
        for n in (250, 1000, 4000):
            store = f"{tmp}/d{n}"
            _run(store, "x", 8000, n)
            _run(store, "y", 8000, n, noise=0.9)
            t0 = time.perf_counter()
            diff_runs(Store(store), "x", "y")
            s = time.perf_counter() - t0
            print(f"{n:>8}{s:>10.3f}{1000 * s / n:>16.3f}")
            diff_s[n] = s
        record(f"`cirkit diff` of two synthetic runs, {' / '.join(f'{n:,}' for n in diff_s)} queries",
               " / ".join(f"{s:.2f}" for s in diff_s.values()) + " s")
    server.stop()


if __name__ == "__main__":
    sys.exit(main())
