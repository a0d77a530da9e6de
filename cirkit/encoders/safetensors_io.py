"""Reading safetensors files (single or sharded with an index) into NumPy without torch.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte offsets)
and the raw little-endian tensor bytes. Reading it directly (memory-mapped) also covers bfloat16 tensors,
which NumPy lacks, through ml_dtypes.
"""

from __future__ import annotations

import ctypes
import functools
import json
import mmap
import os
import struct

import ml_dtypes
import numpy as np

from .clip_config import CheckpointError

__all__ = ["read_safetensors", "parse_safetensors", "safetensors_bytes", "checkpoint_files", "release_pages"]

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
    data = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    return parse_safetensors(data, path)[0]


def release_pages(*views: np.ndarray) -> None:
    """Tell the kernel that the file pages under these memory-mapped tensors are not needed any more.

    A loader that copies each tensor into its own arrays calls this after each copy, so the file's pages leave
    the process's resident memory as it goes instead of all staying mapped until the last tensor is read (which
    doubled the peak of loading a model). The mapping is read-only and file-backed, so touching a view again
    simply reads the file again. Views of anything but a file mapping, and systems without ``madvise``, are
    left alone."""
    advise = getattr(_libc(), "madvise", None)
    if advise is None:
        return
    page = mmap.PAGESIZE
    for view in views:
        if not _is_file_mapped(view) or view.nbytes < page:
            continue
        start = view.__array_interface__["data"][0]
        first, last = -(-start // page) * page, (start + view.nbytes) // page * page  # whole pages inside
        if last > first:
            advise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 4)  # MADV_DONTNEED


def _is_file_mapped(view) -> bool:
    """A read-only view of a file mapping (a writable, copy-on-write mapping could hold changes that dropping
    its pages would lose)."""
    if view.flags.writeable:
        return False
    base = view
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) or isinstance(base.base, mmap.mmap):
            return True
        base = base.base
    return False


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def parse_safetensors(data, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file's bytes (a uint8 array or bytes; tensors are views
    of it); ``where`` names the file in errors."""
    data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if len(data) < 8:
        raise CheckpointError(f"{where}: truncated (no header)")
    n = int(np.asarray(data[:8]).view("<u8")[0])
    if n > len(data) - 8:
        raise CheckpointError(f"{where}: header length {n} exceeds the file size {len(data)}")
    try:
        header = json.loads(np.asarray(data[8 : 8 + n]).tobytes())
    except ValueError as exc:
        raise CheckpointError(f"{where}: header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: header is not a JSON object")
    body, tensors = data[8 + n :], {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{where}: tensor {name} has unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end > len(body) or end - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise CheckpointError(f"{where}: tensor {name} is truncated or its offsets do not match its shape {shape}")
        tensors[name] = body[begin:end].view(dtype).reshape(shape)
    return tensors, dict(header.get("__metadata__") or {})


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file of ``tensors`` (names sorted, data 8-byte aligned, little-endian), bfloat16 included."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        if np.dtype(arr.dtype) not in names:
            raise ValueError(f"tensor {name}: dtype {arr.dtype} has no safetensors name")
        raw = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).tobytes()
        header[name] = {"dtype": names[np.dtype(arr.dtype)], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)
