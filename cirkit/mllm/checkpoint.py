"""A trained MLLM method as a model folder: ``adapter.safetensors`` (the trained tensors by flat name) and
``cirkit_mllm.json`` (the method, its config, the task prompts' token ids, and the folder and content digest
of the frozen LLM and vision checkpoints). The frozen models are not copied; loading checks their digests, so
a checkpoint never runs on a base it was not trained with.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..encoders.clip_config import CheckpointError
from ..encoders.safetensors_io import read_safetensors

__all__ = ["checkpoint_files", "read_checkpoint", "MANIFEST", "WEIGHTS"]

MANIFEST, WEIGHTS = "cirkit_mllm.json", "adapter.safetensors"


def checkpoint_files(manifest: dict, tensors: dict[str, np.ndarray], extra: dict[str, bytes] | None = None
                     ) -> dict[str, bytes]:
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in sorted(tensors.items())}
    files = {MANIFEST: json.dumps(manifest, indent=1, sort_keys=True).encode(), WEIGHTS: save(arrays)}
    return {**files, **(extra or {})}


def read_checkpoint(directory: str, method: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, flat tensors) of a checkpoint folder; a clear error names the file and what is wrong."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: no {MANIFEST} (expected a cirkit {method} checkpoint folder)")
    try:
        manifest = json.loads(open(path, encoding="utf-8").read())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("method") != method:
        found = manifest.get("method") if isinstance(manifest, dict) else None
        raise CheckpointError(f"{path}: 'method' is {found!r}, expected {method!r}")
    for field in ("config", "bases", "query_task", "target_task"):
        if field not in manifest:
            raise CheckpointError(f"{path}: lacks the field {field!r}")
    return manifest, read_safetensors(os.path.join(directory, WEIGHTS))
