"""Causal LM architecture settings read from a Hugging Face ``config.json`` (Llama and Qwen2 families).

Mistral reads as the Llama family (without a sliding window); the language model of a LLaVA-NeXT or Qwen2-VL
folder is read from its ``text_config`` (see ``vlm_folders.py``). Both the transformers v5 layout (``rope_parameters``) and the older one (``rope_theta`` + ``rope_scaling``)
are read, since checkpoints in the wild carry either.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ..encoders.clip_config import CheckpointError
from .vlm_folders import language_config

__all__ = ["LMConfig", "RopeConfig", "read_lm_config", "CheckpointError", "FAMILIES"]

FAMILIES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
ROPE_TYPES = ("default", "linear", "dynamic", "llama3")
_ROPE_FIELDS = {"linear": ("factor",), "dynamic": ("factor",),
                "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding settings: ``kind`` picks how the inverse frequencies are scaled."""

    theta: float = 10000.0
    kind: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class LMConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    rope: RopeConfig = RopeConfig()
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None

    @property
    def groups(self) -> int:
        """Query heads per key/value head (grouped-query attention)."""
        return self.num_attention_heads // self.num_key_value_heads


def _rope(raw: dict, path: str) -> RopeConfig:
    params = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise CheckpointError(f"{path}: 'rope_parameters' must be an object, found {type(params).__name__}")
    if any(isinstance(v, dict) for v in params.values()):
        raise CheckpointError(f"{path}: 'rope_parameters' is nested per layer type; cirkit reads one global setting")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise CheckpointError(f"{path}: 'rope_parameters.rope_type' is {kind!r}; supported: {', '.join(ROPE_TYPES)}")
    missing = [k for k in _ROPE_FIELDS.get(kind, ()) if k not in params]
    if missing:
        raise CheckpointError(f"{path}: rope_type {kind!r} needs {', '.join(missing)} in 'rope_parameters'")
    values = {k: float(params[k]) for k in ("factor", "low_freq_factor", "high_freq_factor") if k in params}
    if "original_max_position_embeddings" in params:
        values["original_max_position_embeddings"] = int(params["original_max_position_embeddings"])
    return RopeConfig(theta=float(params.get("rope_theta", raw.get("rope_theta", 10000.0))), kind=kind, **values)


def _ids(value) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(int(v) for v in (value if isinstance(value, list) else [value]))


def _generation_settings(directory: str) -> dict:
    """``generation_config.json`` (when present) decides the end and pad tokens, as it does for transformers."""
    path = os.path.join(directory, "generation_config.json")
    if not os.path.isfile(path):
        return {}
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    return {k: raw[k] for k in ("eos_token_id", "pad_token_id") if isinstance(raw, dict) and raw.get(k) is not None}


def read_lm_config(directory: str) -> LMConfig:
    """Parse ``directory/config.json``; a clear :class:`CheckpointError` names the file and field otherwise."""
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: no config.json (expected a Hugging Face causal LM directory)")
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    raw = language_config(raw, path)  # a LLaVA-NeXT / Qwen2-VL folder: its language model's settings
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        raise CheckpointError(f"{path}: 'model_type' is {model_type!r}; cirkit's causal LM reads "
                              f"{', '.join(repr(k) for k in FAMILIES)}")
    required = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"]
    missing = [k for k in required if not isinstance(raw.get(k), int)]
    if missing:
        raise CheckpointError(f"{path}: lacks integer field(s) {', '.join(missing)}")
    act = raw.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(f"{path}: 'hidden_act' is {act!r}; the Llama and Qwen2 families use 'silu'")
    if raw.get("use_sliding_window"):
        raise CheckpointError(f"{path}: 'use_sliding_window' is true; cirkit's causal LM has full attention only")
    if model_type == "mistral" and raw.get("sliding_window") is not None:
        raise CheckpointError(f"{path}: 'sliding_window' is {raw['sliding_window']}; cirkit's causal LM reads Mistral "
                              "(as the Llama family) with full attention only (sliding_window null)")
    heads = raw["num_attention_heads"]
    kv_heads = raw.get("num_key_value_heads") or heads
    if heads % kv_heads:
        raise CheckpointError(f"{path}: 'num_attention_heads' ({heads}) is not a multiple of "
                              f"'num_key_value_heads' ({kv_heads})")
    head_dim = raw.get("head_dim") or raw["hidden_size"] // heads
    qwen = model_type == "qwen2"
    generation = _generation_settings(directory)
    return LMConfig(
        model_type=model_type, vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"],
        intermediate_size=raw["intermediate_size"], num_hidden_layers=raw["num_hidden_layers"],
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        qkv_bias=True if qwen else bool(raw.get("attention_bias", False)),
        o_bias=False if qwen else bool(raw.get("attention_bias", False)),
        mlp_bias=False if qwen else bool(raw.get("mlp_bias", False)),
        rope=_rope(raw, path), bos_token_id=raw.get("bos_token_id"),
        eos_token_ids=_ids(generation.get("eos_token_id", raw.get("eos_token_id"))),
        pad_token_id=generation.get("pad_token_id", raw.get("pad_token_id")),
    )
