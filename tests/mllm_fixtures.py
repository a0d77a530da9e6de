"""Tiny random backbones for the trained methods: a 2-layer Llama-layout LM written as a real folder
(config.json, safetensors, a word-level tokenizer) and random "frozen vision features" that make composed
triplets learnable (the target's features are the reference's plus a direction chosen by the edit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cirkit.lm.config import read_lm_config
from cirkit.lm.weights import expected_shapes
from cirkit.mllm.loading import folder_digest
from cirkit.mllm.model import Backbone, MLLMConfig, backbone

WORDS = ("make it red blue green yellow purple orange circle square triangle star heart small large left right "
         "top bottom center add remove move change the a to and of one more background shape colour keep as "
         "they are objects white black grey is with image describe this apply change").split()
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]


def write_tiny_llm(directory: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> str:
    """A random Llama-layout LM folder whose vocabulary is ``SPECIAL + WORDS`` padded to 64 ids."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(SPECIAL + WORDS))}
    size = max(64, len(vocab))
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": size, "hidden_size": hidden,
              "intermediate_size": 2 * hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    (directory / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    tensors = {name: (1.0 + 0.1 * rng.standard_normal(shape) if "norm" in name else 0.2 * rng.standard_normal(shape))
               .astype(np.float32) for name, shape in expected_shapes(read_lm_config(str(directory))).items()}
    save_file(tensors, str(directory / "model.safetensors"))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(directory))
    return str(directory)


def tiny_backbone(folder: str, model: MLLMConfig, vision_dim: int = 16) -> Backbone:
    return backbone(folder, folder_digest(folder), model, vision_dim)


def triplets(n: int, *, tokens: int = 5, dim: int = 16, seed: int = 0, edits: int = 4) -> dict:
    """``n`` (reference features, edit ids, target features); edit k adds direction k to every image token."""
    rng = np.random.default_rng(seed)
    directions = 3.0 * rng.standard_normal((edits, dim)).astype(np.float32)
    reference = rng.standard_normal((n, tokens, dim)).astype(np.float32)
    kind = rng.integers(0, edits, n)
    target = reference + directions[kind][:, None, :]
    ids = np.stack([10 + kind, 20 + rng.integers(0, 4, n), 30 + kind]).T.astype(np.int32)
    return {"reference": reference, "target": target, "tokens": ids, "mask": np.ones_like(ids)}


def cot_triplets(n: int, **kw) -> dict:
    """``triplets`` whose edit text is followed by a chain of thought determined by the edit (then the end token
    2): ``labels`` mark the CoT and end tokens, the ones the model must learn to write."""
    data = triplets(n, **kw)
    kind = data["tokens"][:, 0] - 10
    cot = np.stack([40 + kind, 44 + kind, 48 + kind, np.full_like(kind, 2)]).T.astype(np.int32)
    tokens = np.concatenate([data["tokens"], cot], axis=1)
    labels = np.concatenate([np.zeros_like(data["tokens"]), np.ones_like(cot)], axis=1)
    return {**data, "tokens": tokens, "mask": np.ones_like(tokens), "labels": labels, "cot": cot,
            "prompt": data["tokens"]}


def stored_triplets(data: dict, llm: str):
    """``triplets`` as the stored artifact: the references then the targets as its image table (one row each)."""
    from cirkit.mllm.data import TrainingTriplets

    n = len(data["tokens"])
    rows = np.arange(n, dtype=np.int32)
    return TrainingTriplets(np.concatenate([data["reference"], data["target"]]), rows, rows + n, data["tokens"],
                            data["mask"], (3, 4, 5), (6, 7), llm, folder_digest(llm), labels=data.get("labels"))
