"""The gathering data source: a batch of row numbers into a shared table reads as the rows themselves (what an
ArraySource over per-example copies gives), and bad row numbers fail when the source is built, not mid-training."""

from __future__ import annotations

import numpy as np
import pytest

from cirkit.training import ArraySource, GatherSource


def test_a_gathered_batch_is_the_batch_of_the_copied_rows():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 3, 2)).astype(np.float32)
    a, b = rng.integers(0, 5, 12).astype(np.int32), rng.integers(0, 5, 12).astype(np.int32)
    ids = rng.integers(0, 9, (12, 4)).astype(np.int32)
    copied = ArraySource({"a": table[a], "b": table[b], "ids": ids})
    gathered = GatherSource({"a": a, "b": b, "ids": ids}, {"images": table}, {"a": "images", "b": "images"})
    assert len(gathered) == 12
    for indices in (np.array([3, 0, 11, 3]), np.arange(12)[::-1]):
        want, got = copied.batch(indices), gathered.batch(indices)
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("rows, match", [(np.array([0, 5]), "outside"), (np.array([-1, 0]), "outside"),
                                         (np.array([0.0, 1.0]), "integer"), (np.zeros((2, 1), int), "integer")])
def test_bad_row_numbers_are_refused_when_the_source_is_built(rows, match):
    with pytest.raises(ValueError, match=match):
        GatherSource({"a": rows, "ids": np.zeros((2, 3))}, {"images": np.zeros((5, 2))}, {"a": "images"})


def test_a_gathered_field_needs_its_table():
    with pytest.raises(ValueError, match="table"):
        GatherSource({"a": np.array([0, 1])}, {"images": np.zeros((5, 2))}, {"a": "pixels"})
