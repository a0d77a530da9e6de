"""Two JAX CPU devices per process, so the trainer runs its data-parallel step on a CPU-only machine.

XLA CPU makes one device per process unless ``--xla_force_host_platform_device_count`` says otherwise, and the
flag is read once, when JAX starts its CPU backend; so the command line sets it before anything imports JAX.
The trainer splits each batch over the devices (parameters replicated, gradients all-reduced): on the 2-core
development machine a step of the demo's CLIP costs 6-15 % less CPU time on 2 devices than on 1, and 4 or 8
devices are slower again (README, Training). Only the CPU platform gets the extra device: where JAX runs on
an accelerator its devices are unchanged. The result is the same computation split differently, equal to one
device within float rounding (tests/training/test_sharding.py), so cache keys do not hold the device count,
as they do not hold the CPU model.

``CIRKIT_HOST_DEVICES`` sets the count (``1`` turns this off); an ``XLA_FLAGS`` that already names a host
device count wins. Imports nothing heavy: the CLI calls it first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["HOST_DEVICES", "FLAG", "configure_host_devices"]

HOST_DEVICES = 2
FLAG = "--xla_force_host_platform_device_count"


def configure_host_devices(environ: MutableMapping[str, str] | None = None) -> int | None:
    """Add ``FLAG=N`` to ``XLA_FLAGS`` in ``environ`` (default ``os.environ``) and return N; ``None`` where
    nothing is changed: the flag is already there, ``CIRKIT_HOST_DEVICES`` is 1, or JAX is already imported in
    this process (too late for the flag to count, and not this function's to decide)."""
    env = os.environ if environ is None else environ
    raw = env.get("CIRKIT_HOST_DEVICES", str(HOST_DEVICES)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"CIRKIT_HOST_DEVICES must be a whole number of CPU devices (1 or more), got {raw!r}")
    count = int(raw)
    flags = env.get("XLA_FLAGS", "")
    if count == 1 or FLAG in flags or (environ is None and "jax" in sys.modules):
        return None
    env["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
