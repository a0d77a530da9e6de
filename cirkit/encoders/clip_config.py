"""CLIP architecture settings read from a Hugging Face ``CLIPModel`` ``config.json``."""

from __future__ import annotations

import dataclasses
import json
import os

__all__ = ["TowerConfig", "ClipConfig", "read_clip_config", "CheckpointError"]

_ACTIVATIONS = ("quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh")


class CheckpointError(ValueError):
    """A checkpoint directory cannot be read as a CLIP model; the message says which file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class TowerConfig:
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_hidden_layers: int
    hidden_act: str
    layer_norm_eps: float
    # text only
    vocab_size: int = 0
    max_position_embeddings: int = 0
    eos_token_id: int = 2
    # vision only
    image_size: int = 0
    patch_size: int = 0
    num_channels: int = 3


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    text: TowerConfig
    vision: TowerConfig
    projection_dim: int
    logit_scale_init_value: float = 2.6592


def _tower(raw: dict, path: str, key: str, vision: bool) -> TowerConfig:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: '{key}' must be an object")
    required = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers"]
    required += ["image_size", "patch_size"] if vision else ["vocab_size", "max_position_embeddings"]
    missing = [k for k in required if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: '{key}' lacks {', '.join(missing)}")
    act = raw.get("hidden_act", "quick_gelu")
    if act not in _ACTIVATIONS:
        raise CheckpointError(f"{path}: '{key}.hidden_act' is {act!r}; supported: {', '.join(_ACTIVATIONS)}")
    fields = {f.name for f in dataclasses.fields(TowerConfig)}
    values = {k: raw[k] for k in fields if k in raw}
    values.setdefault("hidden_act", act)
    values.setdefault("layer_norm_eps", 1e-5)
    if raw.get("hidden_size", 0) % raw.get("num_attention_heads", 1):
        raise CheckpointError(f"{path}: '{key}.hidden_size' is not divisible by num_attention_heads")
    return TowerConfig(**values)


def read_clip_config(directory: str) -> ClipConfig:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: no config.json (expected a Hugging Face CLIPModel directory)")
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    archs = raw.get("architectures") or []
    model_type = raw.get("model_type")
    if model_type != "clip" or (archs and not any(a in ("CLIPModel",) for a in archs)):
        raise CheckpointError(
            f"{path}: unknown architecture (model_type={model_type!r}, architectures={archs}); "
            "cirkit reads Hugging Face CLIPModel checkpoints (model_type 'clip', architecture 'CLIPModel')"
        )
    text = _tower(raw.get("text_config", {}), path, "text_config", vision=False)
    vision = _tower(raw.get("vision_config", {}), path, "vision_config", vision=True)
    return ClipConfig(text, vision, int(raw.get("projection_dim", 512)), float(raw.get("logit_scale_init_value", 2.6592)))
