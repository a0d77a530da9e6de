"""Reading safetensors files (single or sharded with an index) into NumPy without torch.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte offsets)
and the raw little-endian tensor bytes. Reading it directly (memory-mapped) also covers bfloat16 tensors,
which NumPy lacks, through ml_dtypes.
"""

from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

from .clip_config import CheckpointError

__all__ = ["read_safetensors", "checkpoint_files"]

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def checkpoint_files(directory: str) -> list[str]:
    """``model.safetensors``, or the shards listed by ``model.safetensors.index.json``."""
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(single):
        return [single]
    if os.path.isfile(index):
        try:
            weight_map = json.loads(open(index, encoding="utf-8").read())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{index}: expected an object with a 'weight_map' ({exc})") from exc
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not os.path.isfile(os.path.join(directory, f))]
        if missing:
            raise CheckpointError(f"{index}: lists shard(s) that do not exist: {', '.join(missing)}")
        return [os.path.join(directory, f) for f in files]
    if any(n.endswith((".bin", ".pt", ".pth")) for n in os.listdir(directory)):
        raise CheckpointError(f"{directory}: only PyTorch pickle weights found; cirkit reads safetensors only "
                              "(convert with `model.save_pretrained(dir, safe_serialization=True)`)")
    raise CheckpointError(f"{directory}: no model.safetensors or model.safetensors.index.json")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of one file, memory-mapped (read-only views)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated (no header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise CheckpointError(f"{path}: header length {n} exceeds the file size {size}")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise CheckpointError(f"{path}: header is not valid JSON ({exc})") from exc
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end > len(data) or end - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise CheckpointError(f"{path}: tensor {name} is truncated or its offsets do not match its shape {shape}")
        tensors[name] = data[begin:end].view(dtype).reshape(shape)
    return tensors
