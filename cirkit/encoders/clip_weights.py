"""Map Hugging Face ``CLIPModel`` tensor names onto cirkit's Flax parameter trees, with named errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .clip_config import CheckpointError, ClipConfig, read_clip_config
from .clip_model import ClipText, ClipVision
from .safetensors_io import checkpoint_files, read_safetensors

__all__ = ["load_clip_params", "expected_shapes", "flatten_params", "hf_name"]

_IGNORED = {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"}
_DENSE = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "text_projection", "visual_projection")


def _tower_and_path(name: str) -> tuple[str, list[str]] | None:
    parts = name.split(".")
    if parts[0] in ("text_projection", "visual_projection"):
        return ("text" if parts[0] == "text_projection" else "vision"), parts
    if parts[0] not in ("text_model", "vision_model"):
        return None
    tower = "text" if parts[0] == "text_model" else "vision"
    rest = parts[1:]
    if rest and rest[0] == "embeddings":
        rest = rest[1:]
    out = []
    i = 0
    while i < len(rest):
        if rest[i] == "layers" and i + 1 < len(rest):
            out.append(f"layers_{rest[i + 1]}")
            i += 2
        else:
            out.append(rest[i])
            i += 1
    return tower, out


def _leaf(path: list[str], array: np.ndarray) -> tuple[list[str], np.ndarray]:
    """HF leaf name -> Flax leaf name (and layout)."""
    *module, leaf = path
    owner = module[-1] if module else leaf
    if leaf in ("patch_embedding", "class_embedding") or owner == "patch_embedding":
        return ([owner] if owner == "patch_embedding" else [leaf]), array
    if leaf == "weight":
        if owner in _DENSE:
            return module + ["kernel"], array.T
        if owner.endswith("embedding"):
            return module + ["embedding"], array
        return module + ["scale"], array  # LayerNorm
    return path, array


def hf_name(tower: str, key: tuple[str, ...]) -> str:
    """Flax parameter path -> the Hugging Face tensor name it is read from."""
    if key[0] in ("text_projection", "visual_projection"):
        return f"{key[0]}.weight"
    prefix = "text_model" if tower == "text" else "vision_model"
    if key == ("patch_embedding",):
        return f"{prefix}.embeddings.patch_embedding.weight"
    if key == ("class_embedding",):
        return f"{prefix}.embeddings.class_embedding"
    parts = [p.replace("layers_", "layers.") for p in key[:-1]]
    leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(key[-1], key[-1])
    if parts[0] in ("token_embedding", "position_embedding"):
        parts = ["embeddings"] + parts
    return ".".join([prefix, *parts, leaf])


def expected_shapes(config: ClipConfig) -> dict[str, dict]:
    text = jax.eval_shape(ClipText(config).init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
    size = config.vision.image_size
    vision = jax.eval_shape(ClipVision(config).init, jax.random.PRNGKey(0), jnp.zeros((1, 3, size, size)))
    return {"text": text["params"], "vision": vision["params"]}


def flatten_params(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for k, v in tree.items():
        out.update(flatten_params(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def _unflatten(flat: dict[tuple, object]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return tree


def load_clip_params(directory: str) -> tuple[ClipConfig, dict, float]:
    """(config, {"text": params, "vision": params}, logit_scale) from a CLIPModel directory, as float32."""
    config = read_clip_config(directory)
    tensors: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for path in checkpoint_files(directory):
        for name, arr in read_safetensors(path).items():
            tensors[name] = arr
            origin[name] = path
    expected = {tower: flatten_params(tree) for tower, tree in expected_shapes(config).items()}
    loaded: dict[str, dict[tuple, np.ndarray]] = {"text": {}, "vision": {}}
    extra = []
    logit_scale = float(np.asarray(tensors.get("logit_scale", config.logit_scale_init_value), np.float32))
    for name, arr in tensors.items():
        if name in _IGNORED or name == "logit_scale":
            continue
        found = _tower_and_path(name)
        if found is None:
            extra.append(name)
            continue
        tower, path = found
        flax_path, value = _leaf(path, np.asarray(arr, np.float32))
        key = tuple(flax_path)
        if key not in expected[tower]:
            extra.append(name)
            continue
        want = tuple(expected[tower][key].shape)
        if tuple(value.shape) != want:
            got = tuple(arr.shape)
            raise CheckpointError(f"{origin[name]}: tensor {name} has shape {got}; this config expects "
                                  f"{want if value.shape == arr.shape else tuple(reversed(want))}")
        loaded[tower][key] = value
    missing = [hf_name(tower, k) for tower in expected for k in expected[tower] if k not in loaded[tower]]
    problems = []
    if missing:
        problems.append(f"missing tensors for {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if extra:
        problems.append(f"unexpected tensors {', '.join(sorted(extra)[:10])}{' ...' if len(extra) > 10 else ''}")
    if problems:
        raise CheckpointError(f"{directory}: " + "; ".join(problems))
    return config, {tower: _unflatten(flat) for tower, flat in loaded.items()}, logit_scale
