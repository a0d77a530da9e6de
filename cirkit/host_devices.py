"""Two JAX CPU devices for ``cirkit demo``, so its CLIP training runs data-parallel on a CPU-only machine.

XLA CPU makes one device per process unless ``--xla_force_host_platform_device_count`` says otherwise, and the
flag is read once, when JAX starts its CPU backend; so the command line sets it before anything imports JAX.
The trainer splits each batch over all local devices (parameters replicated, gradients all-reduced): on the
2-core development machine a step of the demo's CLIP costs 6-15 % less CPU time on 2 devices than on 1, and 4
or 8 devices are slower again (README, Training). Only ``cirkit demo`` does this by default: it trains and
embeds with the small CLIP alone. Elsewhere every JAX part (CLIP encoders, the local LM path, the MLLM
trainers) would split over the devices too and keep a copy of its replicated weights per device, which is
not measured, so ``CIRKIT_HOST_DEVICES=N`` opts any command in (and ``1`` opts the demo out); an
``XLA_FLAGS`` that already names a host device count wins. Only the CPU platform gets the extra devices: an
accelerator's are unchanged. The split step equals one device's within float rounding
(tests/training/test_sharding.py), so cache keys do not hold the device count, as they do not hold the CPU
model. Imports nothing heavy: the CLI calls it first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["DEMO_DEVICES", "FLAG", "configure_host_devices"]

DEMO_DEVICES = 2
FLAG = "--xla_force_host_platform_device_count"


def configure_host_devices(environ: MutableMapping[str, str] | None = None, default: int = 1) -> int | None:
    """Add ``FLAG=N`` to ``XLA_FLAGS`` in ``environ`` (default ``os.environ``) and return N, where N is
    ``CIRKIT_HOST_DEVICES`` or else ``default``; ``None`` where nothing is changed: N is 1, the flag is already
    there, or JAX is already imported in this process (too late for the flag to count)."""
    env = os.environ if environ is None else environ
    raw = env.get("CIRKIT_HOST_DEVICES", str(default)).strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"CIRKIT_HOST_DEVICES must be a whole number of CPU devices (1 or more), got {raw!r}")
    count = int(raw)
    flags = env.get("XLA_FLAGS", "")
    if count == 1 or FLAG in flags or (environ is None and "jax" in sys.modules):
        return None
    env["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
