"""ScaNN against exact search on a clustered synthetic gallery (default 1M x 512).

Prints recall@10 of ScaNN against exact top-10, queries per second of both (and the ratio), ScaNN's build
time, and the extra memory exact search needs on top of the gallery (tracemalloc peak). Run with
``nox -s bench`` or ``python bench/retrieval_bench.py [N] [DIM] [QUERIES]``.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np

from cirkit.retrieval.exact import exact_topk
from cirkit.retrieval.scann_index import ScannConfig, build_scann, load_searcher


def clustered_gallery(n: int, dim: int, n_clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start : start + m] = centres[rng.integers(0, n_clusters, m)] + 0.5 * rng.standard_normal((m, dim), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def main(n: int = 1_000_000, dim: int = 512, n_queries: int = 1000) -> None:
    import tempfile

    t0 = time.perf_counter()
    gallery = clustered_gallery(n, dim, n_clusters=max(10, n // 1000))
    rng = np.random.default_rng(1)
    queries = gallery[rng.choice(n, n_queries, replace=False)] + 0.3 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"gallery {n} x {dim} float32 ({gallery.nbytes / 2**30:.2f} GiB), {n_queries} queries, made in {time.perf_counter() - t0:.1f}s")

    tracemalloc.start()
    t0 = time.perf_counter()
    exact_i, _ = exact_topk(queries, gallery, 10, normalised=True)
    exact_s = time.perf_counter() - t0
    _, exact_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    config = ScannConfig(num_leaves=max(1, min(2000, n // 500)), num_leaves_to_search=max(1, min(100, n // 10000)),
                         training_sample_size=min(250_000, n), reorder=200)
    t0 = time.perf_counter()
    index = build_scann(gallery, config, k=10)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        searcher = load_searcher(index, tmp)
        searcher.search_batched(queries[:10], final_num_neighbors=10)  # warm up
        t0 = time.perf_counter()
        scann_i, _ = searcher.search_batched(queries, final_num_neighbors=10)
        scann_s = time.perf_counter() - t0
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(np.asarray(scann_i), exact_i)]))
    exact_qps, scann_qps = n_queries / exact_s, n_queries / scann_s
    print(f"ScaNN config: {config}")
    print(f"{'measure':<44}{'value':>14}{'goal':>12}")
    print(f"{'ScaNN recall@10 vs exact':<44}{recall:>14.4f}{'>= 0.95':>12}")
    print(f"{'exact QPS':<44}{exact_qps:>14.1f}")
    print(f"{'ScaNN QPS':<44}{scann_qps:>14.1f}")
    print(f"{'ScaNN / exact QPS':<44}{scann_qps / exact_qps:>13.1f}x{'>= 10x':>12}")
    print(f"{'ScaNN build (s)':<44}{build_s:>14.1f}")
    print(f"{'exact search extra memory, peak (MiB)':<44}{exact_peak / 2**20:>14.1f}")
    print(f"{'gallery itself (MiB)':<44}{gallery.nbytes / 2**20:>14.1f}")
    print(f"{'process max RSS (MiB)':<44}{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:>14.1f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
