"""A trained MLLM method as files: ``adapter.safetensors`` (the trainable tree, flattened to ``a/b/c`` names)
and ``cirkit_mllm.json`` (the method, its config as JSON and the content digests of the frozen LLM and vision
checkpoints it was trained on). The frozen models are not copied: a loader is given their folders and checks
their digests, so a checkpoint never runs on a base it was not trained with.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from ..encoders.clip_config import CheckpointError
from ..encoders.safetensors_io import read_safetensors

__all__ = ["checkpoint_files", "read_checkpoint", "flatten", "unflatten", "MANIFEST", "WEIGHTS"]

MANIFEST, WEIGHTS = "cirkit_mllm.json", "adapter.safetensors"


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key in sorted(tree):
        name = f"{prefix}{key}"
        if isinstance(tree[key], dict):
            out.update(flatten(tree[key], name + "/"))
        else:
            out[name] = np.ascontiguousarray(np.asarray(jax.device_get(tree[key]), np.float32))
    return out


def unflatten(tensors: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in tensors.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def checkpoint_files(method: str, config: dict, trainable: dict, bases: dict[str, str],
                     extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The checkpoint's files; ``bases`` maps "llm"/"vision" to the digests of the frozen folders."""
    from safetensors.numpy import save

    manifest = {"method": method, "config": config, "bases": bases}
    files = {MANIFEST: json.dumps(manifest, indent=1, sort_keys=True).encode(), WEIGHTS: save(flatten(trainable))}
    return {**files, **(extra or {})}


def read_checkpoint(directory: str, method: str) -> tuple[dict, dict]:
    """(manifest, trainable tree) of a checkpoint folder; a clear error names what is wrong."""
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
    return manifest, unflatten(read_safetensors(os.path.join(directory, WEIGHTS)))
