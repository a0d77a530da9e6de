"""Reading safetensors memory-mapped, and giving the file's pages back once their tensors are copied."""

from __future__ import annotations

import numpy as np

from cirkit.encoders.safetensors_io import read_safetensors, release_pages, safetensors_bytes


def resident_file_mib() -> float:
    """File-backed resident memory of this process (the mapped pages of files it has touched)."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("/proc/self/status has no RssFile line")


def test_released_pages_leave_resident_memory_and_the_tensor_still_reads(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.standard_normal((64, 1024, 256)).astype(np.float32)  # 64 MiB
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"big": big, "small": np.arange(3, dtype=np.int64)}))
    tensors = read_safetensors(str(path))
    before = resident_file_mib()
    total = float(tensors["big"].sum(dtype=np.float64))  # touches every page of the tensor
    touched = resident_file_mib()
    assert touched - before > 48, (before, touched)
    release_pages(tensors["big"], tensors["small"])
    assert touched - resident_file_mib() > 48, "the pages of the copied tensor are no longer resident"
    # the mapping is file-backed and read-only: reading again reads the file again, with the same values
    assert float(tensors["big"].sum(dtype=np.float64)) == total
    np.testing.assert_array_equal(tensors["small"], [0, 1, 2])


def test_release_ignores_arrays_that_are_not_file_mappings():
    owned = np.ones((1024, 1024), np.float32)
    release_pages(owned, owned[::2], np.zeros(0))
    assert float(owned.sum()) == 1024 * 1024, "memory a process owns is never given away"


def test_release_leaves_a_writable_mapping_and_its_changes_alone(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(np.zeros(1 << 20, np.uint8).tobytes())
    private = np.memmap(path, dtype=np.uint8, mode="c")  # copy-on-write: changes live only in this process
    private[:] = 7
    release_pages(private)
    assert int(private.min()) == 7, "dropping a copy-on-write page would lose the change"
