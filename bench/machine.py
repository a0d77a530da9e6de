"""The machine a bench ran on, printed at the top of every bench: CPU model, cores, accelerator, matmul peak."""

from __future__ import annotations

import os
import platform
import time


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's feature flags (/proc/cpuinfo; empty where it is not readable)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def matmul_peak(n: int = 2048, repeats: int = 10, dtype: str = "float32") -> float:
    """GFLOP/s of a jitted n×n matmul on the default JAX device, measured now (the reference for ratios)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def describe(peak: float | None = None) -> str:
    import jax

    dev = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = (f"machine: {cpu_model()}, {os.cpu_count()} cores, JAX device {dev.platform}:{dev.device_kind}, "
            f"load average {load:.1f}")
    return text + (f", float32 matmul peak {peak:.0f} GFLOP/s (measured now)" if peak else "")
