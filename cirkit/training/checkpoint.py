"""Training state as a stored artifact: trainable parameters, optimiser state, step and data position.

Each tensor is its own array in the store (so an unchanged tensor, or a resumed run's identical one, is
stored once and nothing is one blob re-read whole); :meth:`Checkpoint.safetensors` writes the same tensors
as a real safetensors file. Frozen parameters are not in it: the task's ``init`` gives them back.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..engine import artifact_type

__all__ = ["Checkpoint", "flatten", "unflatten"]

SEP = "/"


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """A nested dict of arrays -> {"a/b/c": array}; keys must be strings without '/'."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        if not isinstance(key, str) or SEP in key:
            raise ValueError(f"parameter names must be strings without '{SEP}', got {key!r}")
        name = f"{prefix}{SEP}{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def unflatten(flat: dict[str, object]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        *path, leaf = name.split(SEP)
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


@artifact_type
@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """After ``step`` optimiser steps: ``params`` (trainable, by flat name), ``opt_state`` (optax state leaves
    in tree order), ``position`` (micro-batches consumed), the loss of every step so far and the evaluations
    (``(step, {metric: value})``)."""

    step: int
    position: int
    params: dict
    opt_state: tuple
    losses: np.ndarray
    evals: tuple = ()

    def safetensors(self) -> bytes:
        """The checkpoint as one safetensors file (``params/NAME``, ``opt/INDEX``; step and position in the
        header's metadata), for tools outside cirkit."""
        from safetensors.numpy import save

        tensors = {f"params/{n}": np.ascontiguousarray(a) for n, a in self.params.items()}
        tensors.update({f"opt/{i:05d}": np.ascontiguousarray(np.asarray(a)) for i, a in enumerate(self.opt_state)})
        tensors["losses"] = np.ascontiguousarray(self.losses)
        meta = {"step": str(self.step), "position": str(self.position), "evals": json.dumps(list(self.evals))}
        return save(tensors, metadata=meta)
