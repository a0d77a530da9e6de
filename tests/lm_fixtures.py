"""Small random Llama and Qwen2 checkpoints, written in the real format by transformers + torch."""

from __future__ import annotations

from pathlib import Path

FAMILY_CONFIGS = {
    # GQA (4 query heads over 2 KV heads), untied head, llama3 rope scaling, biases on attention and MLP
    "llama3": dict(family="llama", num_key_value_heads=2, tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                   rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0,
                                        high_freq_factor=4.0, original_max_position_embeddings=16)),
    # SmolLM2's layout: tied embeddings, GQA, explicit head_dim, linear rope scaling
    "smollm": dict(family="llama", num_key_value_heads=1, tie_word_embeddings=True, head_dim=16,
                   rope_parameters=dict(rope_type="linear", rope_theta=100000.0, factor=2.0)),
    # Qwen2: q/k/v biases, no output bias, untied
    "qwen2": dict(family="qwen2", num_key_value_heads=2, tie_word_embeddings=False,
                  rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
    # dynamic NTK scaling beyond a 16-token trained context
    "dynamic": dict(family="llama", num_key_value_heads=4, tie_word_embeddings=True, max_position_embeddings=16,
                    rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0)),
}


def make_lm_checkpoint(directory: Path, name: str, *, seed: int = 0, vocab: int = 96, hidden: int = 64,
                       layers: int = 2, shard_size: str | None = None):
    """A random causal LM of the named layout saved as safetensors + config.json; returns the torch model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    settings = dict(FAMILY_CONFIGS[name])
    family = settings.pop("family")
    settings.setdefault("max_position_embeddings", 128)
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden + 8, num_hidden_layers=layers,
                  num_attention_heads=4, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if family == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = config_cls(**common, **settings)
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    with torch.no_grad():  # random init leaves norms at one and biases at zero; perturb them so they are tested
        for pname, p in model.named_parameters():
            if "norm" in pname or pname.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.mul_(4.0)  # larger weights: decisive logits and varied greedy continuations
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(directory, safe_serialization=True, **kwargs)
    return model


WORDS = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(93)]


def make_word_lm(directory: Path, name: str = "llama3", seed: int = 0):
    """A tiny random causal LM with a word-level tokenizer over its 96-token vocabulary ("w0" ... "w92")."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = make_lm_checkpoint(directory, name, seed=seed, vocab=len(WORDS))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<unk>").save_pretrained(directory)
    return model
