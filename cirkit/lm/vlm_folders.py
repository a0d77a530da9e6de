"""The language model inside a vision-language folder: LLaVA-1.6 (``llava_next``) and Qwen2-VL / Qwen2.5-VL.

A CIR-LVLM or CIR-CoT config names one such folder as its backbone; cirkit's causal LM reads the LLM part of
it as if it were a standalone Llama/Qwen2 folder: ``text_config`` (or, in older Qwen2-VL configs, the top level)
is the LM's config, and the tensor names of both layouts are renamed to the standalone ones:

- LLaVA-NeXT as the published llava-hf checkpoints and transformers' ``save_pretrained`` write it:
  ``language_model.model.*`` and ``language_model.lm_head.weight``; transformers v5's in-memory names:
  ``model.language_model.*`` and ``lm_head.weight``.
- Qwen2-VL as written: ``model.*`` and ``lm_head.weight`` (the tower under ``visual.*``); v5's in-memory names:
  ``model.language_model.*``, ``model.visual.*``.

Qwen2-VL's multimodal rotary embedding (``mrope``) gives a text token the same position on its three axes, which
is plain 1-D rotary: text-only inputs (and cirkit's visual prompt, placed as text) run as the Qwen2 family.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ..encoders.clip_config import CheckpointError
from ..encoders.safetensors_io import checkpoint_files, read_safetensors

__all__ = ["VLM_TYPES", "folder_type", "language_config", "lm_tensor_name", "read_lm_tensors"]

VLM_TYPES = ("llava_next", "qwen2_vl", "qwen2_5_vl")
_TEXT_TYPES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen2_vl_text": "qwen2",
               "qwen2_5_vl_text": "qwen2"}
_VLM_LM = {  # (pattern, replacement) tried in order; a name that matches none is not the language model's
    "llava_next": [(r"^(model\.)?language_model\.model\.", "model."), (r"^(model\.)?language_model\.lm_head\.", "lm_head."),
                   (r"^model\.language_model\.", "model."), (r"^lm_head\.", "lm_head.")],
    "qwen2_vl": [(r"^model\.language_model\.", "model."), (r"^model\.(?!visual\.)", "model."), (r"^lm_head\.", "lm_head.")],
}
_VLM_LM["qwen2_5_vl"] = _VLM_LM["qwen2_vl"]


def _rope_without_mrope(params):
    """``mrope`` (Qwen2-VL) is the default rotary embedding for text positions; drop its section split."""
    if not isinstance(params, dict):
        return params
    kind = params.get("rope_type", params.get("type"))
    cleaned = {k: v for k, v in params.items() if k not in ("mrope_section", "type", "rope_type")}
    return {**cleaned, "rope_type": "default" if kind in (None, "mrope", "default") else kind}


def language_config(raw: dict, path: str) -> dict:
    """``raw`` itself for a plain LM config; for a vision-language config the LM's fields, as a plain config.

    Unknown vision-language types fail here, naming the file and the types cirkit reads."""
    model_type = raw.get("model_type")
    if model_type not in VLM_TYPES:
        if isinstance(raw.get("text_config"), dict) and isinstance(raw.get("vision_config"), dict):
            raise CheckpointError(f"{path}: 'model_type' is {model_type!r}, a vision-language folder cirkit does not "
                                  f"read; supported: {', '.join(VLM_TYPES)} (or a plain Llama/Qwen2 folder)")
        return raw
    text = raw.get("text_config")
    if text is None and model_type != "llava_next":  # Qwen2-VL configs before transformers 4.5x: one flat level
        text = {k: v for k, v in raw.items() if k != "vision_config"}
        text["model_type"] = model_type + "_text"
    if not isinstance(text, dict):
        raise CheckpointError(f"{path}: a {model_type} config needs a 'text_config' object")
    kind = text.get("model_type", "llama")  # llava-hf configs may omit it for Llama (transformers' default)
    if kind not in _TEXT_TYPES:
        raise CheckpointError(f"{path}: 'text_config.model_type' is {kind!r}; cirkit's causal LM reads "
                              f"{', '.join(sorted(_TEXT_TYPES))}")
    out = {**text, "model_type": _TEXT_TYPES[kind]}
    for key in ("rope_parameters", "rope_scaling"):
        if key in out:
            out[key] = _rope_without_mrope(out[key])
    if "tie_word_embeddings" in raw:  # transformers ties the composite model's head by the outer setting
        out["tie_word_embeddings"] = bool(raw["tie_word_embeddings"]) or (
            model_type != "llava_next" and bool(text.get("tie_word_embeddings")))
    return out


def lm_tensor_name(name: str, model_type: str) -> str | None:
    """A vision-language tensor name -> the standalone LM name it holds (None: not the LM's)."""
    for pattern, replacement in _VLM_LM[model_type]:
        renamed, hits = re.subn(pattern, replacement, name, count=1)
        if hits:
            return renamed
    return None


def folder_type(directory: str) -> str | None:
    """The vision-language ``model_type`` of a folder (None: a plain model folder)."""
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        return None  # the folder's own reader reports the missing config
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the model config ({exc})") from exc
    return raw.get("model_type") if isinstance(raw, dict) and raw.get("model_type") in VLM_TYPES else None


def read_lm_tensors(directory: str, keep_layers: int | None = None) -> dict[str, np.ndarray]:
    """The (memory-mapped) LM tensors of a plain LM or vision-language folder, under the standalone names;
    with ``keep_layers`` only those of the first ``keep_layers`` decoder layers are kept."""
    model_type = folder_type(directory)
    tensors: dict[str, np.ndarray] = {}
    for path in checkpoint_files(directory):
        for name, value in read_safetensors(path).items():
            renamed = name if model_type is None else lm_tensor_name(name, model_type)
            if renamed is None:
                continue
            if renamed in tensors:
                raise CheckpointError(f"{path}: tensor {name} holds {renamed}, which another tensor already holds "
                                      "(two layouts mixed in one folder?)")
            tensors[renamed] = value
    if keep_layers is not None:
        tensors = {k: v for k, v in tensors.items()
                   if not k.startswith("model.layers.") or int(k.split(".")[2]) < keep_layers}
    return tensors
