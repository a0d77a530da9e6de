"""Small random Hugging Face CLIP checkpoints, written in the real formats by transformers + torch.

The vocabulary is a real byte-level BPE in CLIP's format (all 256 byte symbols, their end-of-word forms, a
few merges and the two special tokens), so tokenisation runs the genuine CLIPTokenizer code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from cirkit.training.vocab import byte_symbols

MERGES = ["t h", "th e</w>", "d o", "do g</w>", "c a", "ca t</w>", "r e", "re d</w>", "a n", "an d</w>"]


def write_tokenizer(directory: Path) -> int:
    """vocab.json + merges.txt in CLIP's format; returns the vocabulary size."""
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in MERGES]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return len(vocab)


def make_clip_checkpoint(directory: Path, *, act: str = "quick_gelu", seed: int = 0, hidden: int = 64, layers: int = 2,
                         image_size: int = 32, patch: int = 8, context: int = 16, projection: int = 32,
                         legacy_eos: bool = False, shard_size: str | None = None):
    """A random CLIPModel saved as safetensors with config, tokenizer and preprocessor files; returns the model."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    vocab_size = write_tokenizer(directory)
    eos = 2 if legacy_eos else vocab_size - 1
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=4,
                         num_hidden_layers=layers, max_position_embeddings=context, hidden_act=act,
                         bos_token_id=vocab_size - 2, eos_token_id=eos, pad_token_id=vocab_size - 1),
        vision_config=dict(image_size=image_size, patch_size=patch, hidden_size=hidden, intermediate_size=2 * hidden,
                           num_attention_heads=4, num_hidden_layers=layers, hidden_act=act),
        projection_dim=projection,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # random init leaves LayerNorms at identity; perturb them so they are really tested
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(directory, safe_serialization=True, **kwargs)
    CLIPTokenizer.from_pretrained(directory).save_pretrained(directory)
    CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
                          ).save_pretrained(directory)
    return model
