"""Training state as a stored artifact made of real files: two safetensors files and a small JSON.

- ``model.safetensors``: the trainable parameters by flat name (``text/encoder/layers_0/...``);
- ``trainer.safetensors``: what resuming needs besides them: the optax state leaves in tree order
  (``opt/00000``, ...) and the loss of every step so far (``losses``);
- ``checkpoint.json``: step, data position (micro-batches consumed), evaluations and the trainer config.

Each file is one byte array of the artifact, so its bytes in the store are the file: any safetensors reader
opens ``checkpoint.file("model.safetensors")`` (or the folder :meth:`Checkpoint.write` makes), and nothing is
pickled. Reading is lazy: ``step`` parses the JSON only, ``params`` the model file only, and tensors are views
of the stored bytes. Frozen parameters are not in it: the task's ``init`` gives them back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import numpy as np

from ..encoders.safetensors_io import parse_safetensors, safetensors_bytes
from ..engine import artifact_type

__all__ = ["Checkpoint", "flatten", "unflatten", "MODEL_FILE", "TRAINER_FILE", "STATE_FILE"]

SEP = "/"
MODEL_FILE, TRAINER_FILE, STATE_FILE = "model.safetensors", "trainer.safetensors", "checkpoint.json"
FORMAT = "cirkit-checkpoint/1"


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


def _as_bytes_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).copy()


@artifact_type
@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """After ``step`` optimiser steps: the files ``names[i]`` with bytes ``files[i]`` (uint8). Build one with
    :meth:`build`; read ``step``, ``position``, ``params`` (trainable, by flat name), ``opt_state`` (optax
    leaves in tree order), ``losses`` and ``evals`` (``(step, {metric: value})``) from it."""

    names: tuple[str, ...]
    files: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, *, step: int, position: int, params: dict, opt_state, losses, evals=(),
              config=None) -> Checkpoint:
        state = {"format": FORMAT, "step": int(step), "position": int(position),
                 "evals": [[int(s), {str(k): float(v) for k, v in m.items()}] for s, m in evals],
                 "trainer": dataclasses.asdict(config) if config is not None else None}
        model = safetensors_bytes({n: np.asarray(a) for n, a in params.items()},
                                  {"format": FORMAT, "step": str(int(step))})
        trainer = {f"opt/{i:05d}": np.asarray(a) for i, a in enumerate(opt_state)}
        trainer["losses"] = np.asarray(losses, np.float32).reshape(-1)
        files = {MODEL_FILE: model, TRAINER_FILE: safetensors_bytes(trainer, {"format": FORMAT}),
                 STATE_FILE: json.dumps(state, indent=1, sort_keys=True).encode()}
        return cls(tuple(files), tuple(_as_bytes_array(files[n]) for n in files))

    def with_params(self, params: dict) -> Checkpoint:
        """The same checkpoint (step, optimiser state, losses, JSON) with another model file: for stages that
        combine trained parts, such as a backbone with a refitted head or a fresh start with an aligned part."""
        model = safetensors_bytes({n: np.asarray(a) for n, a in params.items()},
                                  {"format": FORMAT, "step": str(self.step)})
        return Checkpoint(self.names, tuple(_as_bytes_array(model) if n == MODEL_FILE else f
                                            for n, f in zip(self.names, self.files)))

    def file(self, name: str) -> bytes:
        """One file's bytes (``model.safetensors``, ``trainer.safetensors`` or ``checkpoint.json``)."""
        return self._array(name).tobytes()

    def write(self, directory: str) -> str:
        """Write the files into ``directory`` (created if needed); return it."""
        os.makedirs(directory, exist_ok=True)
        for name, data in zip(self.names, self.files):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(np.asarray(data, np.uint8).tobytes())
        return directory

    def _array(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"checkpoint has no file {name!r} (it has {', '.join(self.names)})")
        return np.asarray(self.files[self.names.index(name)], np.uint8)

    @functools.cached_property
    def _state(self) -> dict:
        state = json.loads(self.file(STATE_FILE))
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{STATE_FILE}: expected a {FORMAT} document, got format {state.get('format')!r}")
        return state

    @functools.cached_property
    def _trainer(self) -> dict[str, np.ndarray]:
        return parse_safetensors(self._array(TRAINER_FILE), TRAINER_FILE)[0]

    @property
    def step(self) -> int:
        return int(self._state["step"])

    @property
    def position(self) -> int:
        return int(self._state["position"])

    @property
    def evals(self) -> tuple:
        return tuple((int(s), dict(m)) for s, m in self._state["evals"])

    @functools.cached_property
    def params(self) -> dict[str, np.ndarray]:
        return parse_safetensors(self._array(MODEL_FILE), MODEL_FILE)[0]

    @property
    def opt_state(self) -> tuple[np.ndarray, ...]:
        return tuple(self._trainer[k] for k in sorted(k for k in self._trainer if k.startswith("opt/")))

    @property
    def losses(self) -> np.ndarray:
        return self._trainer["losses"]
