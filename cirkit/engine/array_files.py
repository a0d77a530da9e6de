"""How a store keeps arrays: a value's small arrays inline in its JSON document, the others as Zarr v3 folders
under ``arrays/`` named by their digest, written whole or streamed as they are produced (:mod:`.arrays`), and
read whole or as lazy, verified handles. :class:`ArrayFiles` is the part of :class:`~.store.Store` that does it;
it needs the store's ``fs``, ``location`` and ``array_path``."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .arrays import ArrayStream, StoredArray, chunk_rows, map_streams, write_stream
from .checks import Corrupt, MissingContent, check_name
from .fs import MANIFEST
from .hashing import digest

__all__ = ["ArrayFiles", "ArrayLoader"]

_INLINE_ARRAY_BYTES = 1024


class ArrayFiles:
    """Writing and reading a store's arrays (a mixin of :class:`~.store.Store`)."""

    def spill(self, value: Any) -> Any:
        """``value`` with each :class:`~.arrays.ArrayStream` in it written to the store as it comes (temporary folder,
        published under the array's digest when complete; nothing is published if the stream fails or the process
        dies) and replaced by a :class:`~.arrays.StoredArray` handle on it. Values without streams come back as is."""
        return map_streams(value, self._write_stream)

    def _write_stream(self, stream: ArrayStream) -> StoredArray:
        import zarr

        tmp = self.fs.temp_dir()
        try:
            def create(shape, dtype, chunks):
                return zarr.create_array(store=self.fs.zarr_store(tmp), shape=shape, dtype=dtype, chunks=chunks)

            array_digest, _, _, sums = write_stream(stream, create)
            path = self.array_path(array_digest)
            existing = self._verified(path, array_digest) if self.fs.exists(f"{path}/{MANIFEST}") else None
            if existing is not None:
                self.fs.remove(tmp)  # the same array is stored already, and checked just now: keep it
                return existing
            if self.fs.exists(path):  # a corrupt copy that no value names yet: the one just written replaces it
                self.fs.remove(path)
            self.fs.publish_dir(tmp, path)
        except BaseException:
            self.fs.remove(tmp)
            raise
        z = zarr.open_array(store=self.fs.zarr_store(path), mode="r")
        if z.chunks[0] != chunk_rows(tuple(z.shape), z.dtype.itemsize):  # another writer's layout won a race: no notes
            sums = None
        return StoredArray(z, array_digest, f"{self.location}/{path}", sums)

    def _verified(self, path: str, array_digest: str) -> StoredArray | None:
        """A verified handle on the array folder at ``path`` (streamed once, one chunk at a time), or None when it
        does not decode to ``array_digest``."""
        import zarr

        try:
            handle = StoredArray(zarr.open_array(store=self.fs.zarr_store(path), mode="r"), array_digest,
                                 f"{self.location}/{path}")
            handle.verify()
            return handle
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - any failure to decode or to match is a corrupt copy
            return None

    def _put_array(self, arr: np.ndarray | StoredArray) -> dict:
        if isinstance(arr, StoredArray):
            return self._put_stored(arr)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # a 0-d array stays 0-d (ascontiguousarray makes it 1-d)
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
            arr = arr.astype(arr.dtype.newbyteorder("<"))  # Zarr reports native order: store little-endian (the
            # content hash is of little-endian bytes already, so it does not change)
        ref = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
        if arr.nbytes <= _INLINE_ARRAY_BYTES or arr.ndim == 0:
            return {**ref, "inline": base64.b64encode(arr.tobytes()).decode()}
        ref["digest"] = array_digest = digest(arr)
        path = self.array_path(array_digest)
        if self.fs.exists(f"{path}/{MANIFEST}"):
            return ref
        import zarr

        chunks = (chunk_rows(arr.shape, arr.dtype.itemsize),) + tuple(arr.shape[1:])
        tmp = self.fs.temp_dir()
        z = zarr.create_array(store=self.fs.zarr_store(tmp), shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        z[...] = arr
        self.fs.publish_dir(tmp, path)
        return ref

    def _put_stored(self, arr: StoredArray) -> dict:
        """The reference to a stored array's handle; one held by another store is copied here chunk by chunk."""
        ref = {"dtype": arr.dtype.str, "shape": list(arr.shape), "digest": arr.digest}
        if not self.fs.exists(f"{self.array_path(arr.digest)}/{MANIFEST}"):
            arr.verify()
            copied = self._write_stream(ArrayStream(len(arr), (arr[i:i + arr.chunk_rows]
                                                               for i in range(0, len(arr), arr.chunk_rows))))
            if copied.digest != arr.digest:
                raise Corrupt(f"copying {arr.where} gave an array of another digest")
        return ref

    def _get_array(self, ref: dict, lazy: bool = False) -> np.ndarray | StoredArray:
        """An array as its value's reference describes it; the stored metadata is compared with the
        reference (shape, dtype) before any data is read. ``lazy``: a :class:`~.arrays.StoredArray` handle, not
        yet verified (hashing it verifies it; indexing it verifies it first), instead of the whole array (an
        array stored inline in the value document is returned whole)."""
        dtype = np.dtype(ref["dtype"])
        if dtype.hasobject:
            raise Corrupt("an array of dtype object")
        shape = tuple(int(n) for n in ref["shape"])
        if "inline" in ref:
            return np.frombuffer(base64.b64decode(ref["inline"]), dtype=dtype).reshape(shape).copy()
        import zarr

        path = self.array_path(check_name(ref["digest"]))
        if not self.fs.exists(f"{path}/{MANIFEST}"):
            raise MissingContent(ref["digest"])
        z = zarr.open_array(store=self.fs.zarr_store(path), mode="r")
        if z.dtype != dtype or tuple(z.shape) != shape:
            raise Corrupt(f"array {ref['digest']} has dtype {z.dtype} and shape {tuple(z.shape)} in its metadata, "
                          f"its value names {dtype} {shape}")
        if lazy and len(shape) >= 1:
            return StoredArray(z, ref["digest"], f"{self.location}/{path}")
        return z[...]


class ArrayLoader:
    """A value document's arrays for :func:`~.codec.decode`: ``[i]`` reads one whole, ``lazy(i)`` gives a handle
    (fields named in :func:`~.codec.lazy_fields`); ``nbytes`` counts what was read into memory."""

    def __init__(self, store: ArrayFiles, refs: list) -> None:
        if not isinstance(refs, list):
            raise Corrupt("its arrays are not a list")
        self.store, self.refs, self.nbytes = store, refs, 0

    def __getitem__(self, i: int) -> np.ndarray:
        arr = self.store._get_array(self.refs[i])
        self.nbytes += arr.nbytes
        return arr

    def lazy(self, i: int) -> np.ndarray | StoredArray:
        arr = self.store._get_array(self.refs[i], lazy=True)
        self.nbytes += arr.nbytes if isinstance(arr, np.ndarray) else 0
        return arr
