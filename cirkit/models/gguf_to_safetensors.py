"""A llama-family GGUF file as a float32 safetensors file, written one tensor at a time.

Why not ``from_pretrained(gguf_file=...)`` and ``save_pretrained``: that route holds the de-quantised model,
its copy and the serialised bytes at once (3 GB for a 135M model). Here the GGUF is memory-mapped, each tensor
is de-quantised, un-permuted and copied straight into its place in the output, so the peak is the output
plus one tensor. Facts used (from the GGUF format and llama.cpp's converter): GGUF lists dimensions fastest
first; llama.cpp interleaves the rows of the query and key projections per head for its rotary layout, which
is undone here; tensor names map to transformers' llama names as in ``_NAMES``.

The tensor table is read by :func:`read_tensors`, not by ``gguf.GGUFReader``: that reader parses every metadata
value, one NumPy memmap slice per part, which for SmolLM2's 49k-token vocabulary and its merges took 2.4 s of the
conversion's CPU time (skipping them here takes milliseconds); the metadata the conversion needs (config,
tokenizer) is read by transformers. ``gguf`` still gives the type sizes and the de-quantisation.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ..encoders.safetensors_io import release_pages

__all__ = ["GGUFTensor", "read_tensors", "SafetensorsPlan", "plan_safetensors", "write_safetensors"]

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


class GGUFTensor(NamedTuple):
    name: str
    shape: tuple[int, ...]  # NumPy order, slowest dimension first (the file lists the fastest first)
    tensor_type: object  # a gguf.GGMLQuantizationType
    data: np.ndarray  # uint8, (*shape[:-1], bytes per row): a view of a read-only memory map of the file


# GGUF metadata value types: fixed-size scalars (their struct format), 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_tensors(path: str) -> tuple[GGUFTensor, ...]:
    """The tensors of a GGUF file (v2 or v3), in file order, none of their data read yet. The metadata values
    are stepped over (only ``general.alignment``, where the data starts, is read)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    blob = np.memmap(path, np.uint8, mode="r")
    try:
        if bytes(blob[:4]) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file (it does not start with b'GGUF')")
        version, n_tensors, n_values = struct.unpack_from("<IQQ", blob, 4)
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version}, this reader reads versions 2 and 3")
        at, alignment = 24, 32  # 32: the format's default alignment

        def string(at: int) -> tuple[int, int]:  # (start of the bytes, end)
            (length,) = struct.unpack_from("<Q", blob, at)
            return at + 8, at + 8 + length

        for _ in range(n_values):
            start, at = string(at)
            key = bytes(blob[start:at]).decode()
            (kind,), at = struct.unpack_from("<I", blob, at), at + 4
            count, element = 1, kind
            if kind == _ARRAY:
                (element, count), at = struct.unpack_from("<IQ", blob, at), at + 12
            if element in _SCALARS:
                if key == "general.alignment":
                    (alignment,) = struct.unpack_from(_SCALARS[element], blob, at)
                at += count * struct.calcsize(_SCALARS[element])
            elif element == _STRING:
                for _ in range(count):
                    at = string(at)[1]
            else:
                raise ValueError(f"{path}: metadata {key!r} has value type {element}, which GGUF does not define")
        table = []
        for _ in range(n_tensors):
            start, at = string(at)
            name = bytes(blob[start:at]).decode()
            (n_dims,) = struct.unpack_from("<I", blob, at)
            dims = struct.unpack_from(f"<{n_dims}Q", blob, at + 4)
            kind, offset = struct.unpack_from("<IQ", blob, at + 4 + 8 * n_dims)
            at += 4 + 8 * n_dims + 12
            table.append((name, tuple(reversed(dims)), kind, offset))
    except struct.error as exc:
        raise ValueError(f"{path}: truncated GGUF header ({exc})") from None
    if not isinstance(alignment, int) or alignment <= 0:
        raise ValueError(f"{path}: general.alignment is {alignment!r}, expected a positive whole number of bytes")
    data_start = -(-at // alignment) * alignment
    tensors = []
    for name, shape, kind, offset in table:
        try:
            tensor_type = GGMLQuantizationType(kind)
            block, block_bytes = GGML_QUANT_SIZES[tensor_type]
        except (ValueError, KeyError):
            raise ValueError(f"{path}: tensor {name!r} has GGML type {kind}, which gguf does not know") from None
        if shape[-1] % block:
            raise ValueError(f"{path}: tensor {name!r} has rows of {shape[-1]}, not whole {tensor_type.name} blocks")
        byte_shape = (*shape[:-1], shape[-1] // block * block_bytes)
        start = data_start + offset
        end = start + int(np.prod(byte_shape))
        if end > blob.size:
            raise ValueError(f"{path}: tensor {name!r} ends at byte {end}, past the end of the file ({blob.size})")
        tensors.append(GGUFTensor(name, shape, tensor_type, blob[start:end].reshape(byte_shape)))
    return tuple(tensors)


class SafetensorsPlan:
    """The header and size of the output, known before any tensor is de-quantised."""

    def __init__(self, header: bytes, entries: list[tuple[object, str, tuple[int, ...]]]) -> None:
        self.header = header
        self.entries = entries  # (GGUF tensor, transformers name, numpy shape), in file order
        self.size = len(header) + sum(4 * int(np.prod(shape)) for _, _, shape in entries)


def plan_safetensors(tensors: Sequence[GGUFTensor], path: str) -> SafetensorsPlan:
    """Lay out every tensor of :func:`read_tensors` as float32 (names sorted, as transformers writes them)."""
    entries = [(tensor, transformers_name(tensor.name, path), tensor.shape) for tensor in tensors]
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
