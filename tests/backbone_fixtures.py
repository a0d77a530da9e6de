"""Tiny random LLaVA-NeXT and Qwen2-VL folders written by transformers + torch, in the tensor layouts found in the
wild: ``saved`` (what transformers v5's ``save_pretrained`` writes), ``llava-hf`` (the published llava-hf
checkpoints: the tower under ``vision_tower.vision_model.``) and ``native`` (transformers v5's in-memory names,
``model.language_model.*`` etc.)."""

from __future__ import annotations

import json
import re
from pathlib import Path

VOCAB = 96
TEXT = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=104, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
_TO_NATIVE = {"llava_next": [(r"^language_model\.model\.", "model.language_model."),
                             (r"^language_model\.lm_head\.", "lm_head."), (r"^vision_tower\.", "model.vision_tower."),
                             (r"^multi_modal_projector\.", "model.multi_modal_projector."),
                             (r"^image_newline$", "model.image_newline")],
              "qwen2_vl": [(r"^model\.", "model.language_model."), (r"^visual\.", "model.visual.")]}


def _perturb(model):
    """Random init leaves norms at one and biases at zero; perturb them and widen weights so they are tested."""
    import torch

    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
            elif "embedding" not in name:
                p.mul_(2.0)


def _relayout(directory: Path, kind: str, layout: str) -> None:
    """Rewrite ``model.safetensors`` under another layout's tensor names (``saved``: as written)."""
    from safetensors.numpy import load_file, save_file

    if layout == "saved":
        return
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    if layout == "llava-hf":
        rules = [(r"^vision_tower\.(?!vision_model\.)", "vision_tower.vision_model.")]
    else:
        rules = _TO_NATIVE[kind]
    renamed = {}
    for name, value in tensors.items():
        for pattern, replacement in rules:
            name, hits = re.subn(pattern, replacement, name, count=1)
            if hits:
                break
        renamed[name] = value
    save_file(renamed, str(path), metadata={"format": "pt"})


def make_llava_next(directory: Path, layout: str = "saved", text_type: str = "llama", strategy: str = "default",
                    feature_layer: int = -2):
    """A LLaVA-NeXT folder: a 3-layer CLIP tower on 28x28 images (2x2 patches), a Llama/Mistral/Qwen2 LM; returns
    the torch model."""
    import torch
    from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=3,
                              image_size=28, patch_size=14, layer_norm_eps=1e-5)
    text = {**TEXT, "model_type": text_type, "tie_word_embeddings": False}
    if text_type == "mistral":
        text["sliding_window"] = None
    config = LlavaNextConfig(vision_config=vision.to_dict(), text_config=text, image_grid_pinpoints=[[28, 28], [28, 56]],
                             image_token_index=VOCAB - 1, vision_feature_layer=feature_layer,
                             vision_feature_select_strategy=strategy)
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(config).eval()
    _perturb(model)
    model.save_pretrained(directory, safe_serialization=True)
    _relayout(directory, "llava_next", layout)
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "LlavaNextImageProcessor", "size": {"shortest_edge": 28},
        "crop_size": {"height": 28, "width": 28}, "image_grid_pinpoints": [[28, 28], [28, 56]],
        "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]}))
    return model


def make_qwen2_vl(directory: Path, layout: str = "saved", kind: str = "qwen2_vl"):
    """A Qwen2-VL (or Qwen2.5-VL) folder with a 2-layer tower and an untied 2-layer Qwen2 LM; returns the model."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    config_cls, model_cls = ((Qwen2VLConfig, Qwen2VLForConditionalGeneration) if kind == "qwen2_vl"
                             else (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration))
    text = {**TEXT, "rope_parameters": {"rope_type": "default", "mrope_section": [2, 2, 2], "rope_theta": 10000.0},
            "tie_word_embeddings": False}
    vision = dict(depth=2, hidden_size=48, num_heads=4, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  out_hidden_size=48, intermediate_size=64) if kind == "qwen2_5_vl" else dict(
        depth=2, embed_dim=32, hidden_size=48, num_heads=4, mlp_ratio=2, patch_size=14, spatial_merge_size=2)
    config = config_cls(text_config=text, vision_config=vision, image_token_id=VOCAB - 3, video_token_id=VOCAB - 2,
                        vision_start_token_id=VOCAB - 1, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = model_cls(config).eval()
    _perturb(model)
    model.save_pretrained(directory, safe_serialization=True)
    _relayout(directory, "qwen2_vl", layout)
    return model
