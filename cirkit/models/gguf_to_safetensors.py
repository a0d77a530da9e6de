"""A llama-family GGUF file as a float32 safetensors file, written one tensor at a time.

Why not ``from_pretrained(gguf_file=...)`` and ``save_pretrained``: that route holds the de-quantised model,
its copy and the serialised bytes at once (3 GB for a 135M model). Here the GGUF is memory-mapped, each tensor
is de-quantised, un-permuted and copied straight into its place in the output, so the peak is the output
plus one tensor. Facts used (from the GGUF format and llama.cpp's converter): GGUF lists dimensions fastest
first; llama.cpp interleaves the rows of the query and key projections per head for its rotary layout, which
is undone here; tensor names map to transformers' llama names as in ``_NAMES``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np

from ..encoders.safetensors_io import release_pages

__all__ = ["SafetensorsPlan", "plan_safetensors", "write_safetensors"]

# GGUF block tensor name -> transformers llama module path
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def transformers_name(gguf_name: str, path: str) -> str:
    """The transformers parameter name of a GGUF tensor; a clear error for one this converter does not know."""
    if gguf_name in _NAMES:
        return _NAMES[gguf_name]
    m = _BLOCK.match(gguf_name)
    if not m or m.group(2) not in _BLOCK_NAMES:
        raise ValueError(f"{path}: tensor {gguf_name!r} is not a llama tensor this converter knows")
    return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"


def unpermute_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head row interleaving of a query/key projection (rows = heads * head_dim)."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


class SafetensorsPlan:
    """The header and size of the output, known before any tensor is de-quantised."""

    def __init__(self, header: bytes, entries: list[tuple[object, str, tuple[int, ...]]]) -> None:
        self.header = header
        self.entries = entries  # (GGUF tensor, transformers name, numpy shape), in file order
        self.size = len(header) + sum(4 * int(np.prod(shape)) for _, _, shape in entries)


def plan_safetensors(reader, path: str) -> SafetensorsPlan:
    """Lay out every tensor of a ``gguf.GGUFReader`` as float32 (names sorted, as transformers writes them)."""
    entries = []
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        entries.append((tensor, transformers_name(tensor.name, path), shape))
    entries.sort(key=lambda e: e[1])
    meta: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for _, name, shape in entries:
        end = offset + 4 * int(np.prod(shape))
        meta[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    body = json.dumps(meta, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)  # the data starts 8-byte aligned
    return SafetensorsPlan(len(body).to_bytes(8, "little") + body, entries)


def write_safetensors(plan: SafetensorsPlan, out: np.ndarray, heads: int, kv_heads: int,
                      dequantize: Callable[[np.ndarray, object], np.ndarray]) -> None:
    """Fill ``out`` (uint8, ``plan.size`` bytes) with the safetensors file, de-quantising one tensor at a time."""
    out[: len(plan.header)] = np.frombuffer(plan.header, np.uint8)
    at = len(plan.header)
    for tensor, name, shape in plan.entries:
        weight = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype="<f4").reshape(shape)
        if name.endswith("q_proj.weight"):
            weight = unpermute_rows(weight, heads)
        elif name.endswith("k_proj.weight"):
            weight = unpermute_rows(weight, kv_heads)
        data = np.ascontiguousarray(weight).reshape(-1).view(np.uint8)
        out[at : at + data.size] = data
        at += data.size
        release_pages(tensor.data)  # the GGUF's pages of this tensor: done with, so not resident any more
    assert at == plan.size
