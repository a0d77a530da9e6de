"""Data-parallel placement for the causal LM: parameters replicated on every device, the batch split over them.

Why data parallelism: the models cirkit runs (SmolLM2, Llama 3 8B and Qwen2 7B in bf16) fit one accelerator, and
splitting the batch needs no collective inside a layer, so each device runs the single-device program on its
rows (XLA's partitioner propagates the split from the inputs through the KV cache). Rows are padded to a
multiple of the device count by repeating the last row, and the padding is cut from the results, so a
sharded call returns exactly the rows an unsharded one does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["Placement", "placement"]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where an LM call runs: one device, or a ``batch`` mesh over several."""

    devices: tuple

    @property
    def size(self) -> int:
        return len(self.devices)

    def _sharding(self, spec: PartitionSpec):
        if self.size == 1:
            return jax.sharding.SingleDeviceSharding(self.devices[0])
        return NamedSharding(Mesh(np.array(self.devices), ("batch",)), spec)

    def replicate(self, tree):
        """``tree`` (parameters, LoRA, soft prompt) on every device; a no-op for arrays already placed so."""
        if tree is None:
            return None
        return jax.device_put(tree, self._sharding(PartitionSpec()))

    def split(self, rows: np.ndarray):
        """``rows`` ``[batch, ...]`` padded to a multiple of the device count and split over the devices."""
        rows = np.asarray(rows)
        extra = -len(rows) % self.size
        if extra:
            rows = np.concatenate([rows, np.repeat(rows[-1:], extra, axis=0)])
        return jax.device_put(rows, self._sharding(PartitionSpec("batch")))


def placement(devices: Sequence | None = None) -> Placement:
    """Every device of the default backend (``None``), or the given ones; one device means unsharded."""
    return Placement(tuple(jax.devices() if devices is None else devices))
