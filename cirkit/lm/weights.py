"""Hugging Face Llama/Qwen2 safetensors -> cirkit's stacked parameter tree, with named errors.

``model.layers.{i}.self_attn.q_proj.weight`` ``[out, in]`` becomes ``layers/q_proj/kernel[i]`` ``[in, out]``;
norms, embeddings and the (untied) ``lm_head`` map directly. Every expected tensor must be present with its
expected shape, and no unknown tensor may be left over, so a wrong checkpoint fails loudly instead of
running with random or misplaced weights.
"""

from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
import numpy as np

from ..encoders.safetensors_io import release_pages
from .config import CheckpointError, LMConfig, read_lm_config
from .model import PROJECTIONS
from .vlm_folders import read_lm_tensors

__all__ = ["LanguageModel", "load_lm", "expected_shapes", "hf_name", "params_from_tensors", "random_params"]

_IGNORED = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")
_NORMS = {"input_norm": "input_layernorm", "post_norm": "post_attention_layernorm"}
_MODULE = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


@dataclasses.dataclass(frozen=True)
class LanguageModel:
    """A loaded causal LM: its settings, its frozen parameters and the folder it came from."""

    config: LMConfig
    params: dict = dataclasses.field(repr=False)
    path: str = ""


def _projection_shapes(config: LMConfig) -> dict[str, tuple[int, int]]:
    d, hd = config.hidden_size, config.head_dim
    q, kv, f = config.num_attention_heads * hd, config.num_key_value_heads * hd, config.intermediate_size
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}


def _has_bias(config: LMConfig, name: str) -> bool:
    if name in ("q_proj", "k_proj", "v_proj"):
        return config.qkv_bias
    return config.o_bias if name == "o_proj" else config.mlp_bias


def expected_shapes(config: LMConfig) -> dict[str, tuple[int, ...]]:
    """Every Hugging Face tensor name the checkpoint must hold, with its shape (torch layout)."""
    d = config.hidden_size
    shapes = {"model.embed_tokens.weight": (config.vocab_size, d), "model.norm.weight": (d,)}
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, d)
    for i in range(config.num_hidden_layers):
        for hf in _NORMS.values():
            shapes[f"model.layers.{i}.{hf}.weight"] = (d,)
        for name, (n_in, n_out) in _projection_shapes(config).items():
            shapes[hf_name(i, name, "weight")] = (n_out, n_in)
            if _has_bias(config, name):
                shapes[hf_name(i, name, "bias")] = (n_out,)
    return shapes


def hf_name(layer: int, projection: str, leaf: str = "weight") -> str:
    return f"model.layers.{layer}.{_MODULE[projection]}.{projection}.{leaf}"


def params_from_tensors(config: LMConfig, tensors: dict[str, np.ndarray], where: str, dtype=jnp.float32) -> dict:
    """Check names and shapes against the config, then stack the layers into cirkit's tree."""
    shapes = expected_shapes(config)
    tensors = {k: v for k, v in tensors.items() if not _IGNORED.match(k)}
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)  # some tied checkpoints store the shared matrix twice
    missing = [n for n in shapes if n not in tensors]
    unexpected = [n for n in tensors if n not in shapes]
    if missing:
        raise CheckpointError(f"{where}: missing tensor(s) {', '.join(missing[:5])}"
                              + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if unexpected:
        raise CheckpointError(f"{where}: unexpected tensor(s) {', '.join(unexpected[:5])}"
                              + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
                              + f" for a {config.model_type} config")
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"{where}: tensor {name} has shape {tuple(tensors[name].shape)}, expected {shape}")

    def arr(names, stack=False, transpose=False):
        """One parameter from the named tensors; their file pages are released once copied (a memory-mapped
        checkpoint would otherwise stay resident beside its copy until the last tensor is read)."""
        views = [np.asarray(tensors[n]) for n in names]
        host = np.stack([v.T if transpose else v for v in views]) if stack else (views[0].T if transpose else views[0])
        out = jnp.array(host, dtype=dtype).block_until_ready()  # a finished copy, never a view of the file
        release_pages(*views)
        return out

    layers_range = range(config.num_hidden_layers)
    layers = {ours: arr([f"model.layers.{i}.{hf}.weight" for i in layers_range], stack=True)
              for ours, hf in _NORMS.items()}
    for name in PROJECTIONS:
        entry = {"kernel": arr([hf_name(i, name) for i in layers_range], stack=True, transpose=True)}
        if _has_bias(config, name):
            entry["bias"] = arr([hf_name(i, name, "bias") for i in layers_range], stack=True)
        layers[name] = entry
    params = {"embed": arr(["model.embed_tokens.weight"]), "layers": layers, "norm": arr(["model.norm.weight"])}
    if not config.tie_word_embeddings:
        params["lm_head"] = arr(["lm_head.weight"], transpose=True)
    return params


def load_lm(directory: str, dtype: str = "float32") -> LanguageModel:
    """Read ``config.json`` and the (possibly sharded) safetensors of a Llama/Qwen2 folder, or the language model
    of a LLaVA-NeXT / Qwen2-VL folder, without torch."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    config = read_lm_config(directory)
    params = params_from_tensors(config, read_lm_tensors(directory), directory, jnp.dtype(dtype))
    return LanguageModel(config, params, directory)


def random_params(config: LMConfig, seed: int, std: float = 0.02) -> dict:
    """A random parameter tree of the config's shapes (norms near one), for tests and tiny trained backbones."""
    rng = np.random.default_rng(seed)
    tensors = {name: (1.0 + 0.1 * rng.standard_normal(shape) if name.endswith("norm.weight") or "layernorm" in name
                      else std * rng.standard_normal(shape)).astype(np.float32)
               for name, shape in expected_shapes(config).items()}
    return params_from_tensors(config, tensors, f"random parameters (seed {seed})")
