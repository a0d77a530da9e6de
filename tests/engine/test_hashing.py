"""Canonical hashing: stability across processes and dict orders, sensitivity to every change."""

import copy
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit.engine import FileRef, HashError, digest

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@dataclasses.dataclass(frozen=True)
class Cfg:
    a: int = 1
    b: float = 0.5
    name: str = "x"
    workers: int = dataclasses.field(default=4, metadata={"hash": False})


@given(values)
def test_digest_depends_on_content_not_identity(v):
    assert digest(v) == digest(copy.deepcopy(v))
    assert digest(v) != digest([v]) and digest(v) != digest({"v": v})


# Golden digests: a change here silently invalidates (or, worse, aliases) every key in every user's store.
GOLDEN_VALUES = {
    "none": None,
    "int": 1,
    "float": 1.0,
    "bool": True,
    "text": "café",
    "nested": {"b": [1, 2.5, "x"], "a": (None, False)},
    "array": np.arange(6, dtype=np.float32).reshape(2, 3),
}
GOLDEN_DIGESTS = {
    "none": "8ce86a6ae65d3692e7305e2c58ac62eebd97d3d943e093f577da25c36988246b",
    "int": "fa893b7b6d70835eaa997043b8616a3e74a94d3bbd1b9a67ba45df31d5df71fe",
    "float": "185c28b64ba1c9edbe2aabcc41d3c983810ae878f4e24bfbf86a9900caea10c5",
    "bool": "e632b7095b0bf32c260fa4c539e9fd7b852d0de454e9be26f24d0d6f91d069d3",
    "text": "aac7169bbfc2069e5ad1f45f6a9d95ceff77d4eef70a986540bac2cf65425039",
    "nested": "02edc7dc184e2e8a69062ec95e69df608156b844bfd8345f9e9288f6b9b0c467",
    "array": "e1c2db1e486f04e3b6913fa56b8690840bf2502d9090e22f1b6c882bf47164b6",
}


def test_digests_are_stable_across_processes_and_versions():
    here = {name: digest(value) for name, value in GOLDEN_VALUES.items()}
    code = ("import json, numpy as np; from cirkit.engine.hashing import digest; print(json.dumps({"
            "'nested': digest({'a': (None, False), 'b': [1, 2.5, 'x']}), 'array': digest(np.arange(6, dtype='>f4').reshape(2, 3))}))")
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONHASHSEED": "123",
                                           "PYTHONPATH": str(pathlib.Path(__file__).parents[2])}).stdout)
    assert there == {"nested": here["nested"], "array": here["array"]}, "dict order, byte order and hash seed never matter"
    assert len(set(here.values())) == len(here), "1, 1.0, True and None are distinct"
    assert here == GOLDEN_DIGESTS, "the hashing scheme changed: every stored key would change"


@given(st.dictionaries(st.text(max_size=6), st.integers(), min_size=2, max_size=8), st.randoms())
def test_dict_order_does_not_matter(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert digest(dict(items)) == digest(d)


@given(values, values)
def test_distinct_values_distinct_digests(a, b):
    if _same(a, b):
        assert digest(a) == digest(b)
    else:
        assert digest(a) != digest(b)


def _same(a, b):
    """Value equality as the hash defines it: types matter (1 != 1.0 != True), lists == tuples, -0.0 != 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_one_one_point_zero_and_true_are_distinct():
    assert len({digest(1), digest(1.0), digest(True), digest("1"), digest(b"1")}) == 5
    assert len({digest(0), digest(0.0), digest(False), digest(None), digest("")}) == 5


def test_nan_and_negative_zero_are_deliberate():
    nan2 = np.frombuffer(np.array([0x7FF8000000000001], dtype=np.uint64).tobytes(), dtype=np.float64)[0]
    assert math.isnan(nan2)
    assert digest(float("nan")) == digest(float(nan2)) == digest(-float("nan"))
    assert digest(-0.0) != digest(0.0)
    assert digest(np.array([1.0, np.nan])) == digest(np.array([1.0, nan2]))
    assert digest(np.array([-0.0])) != digest(np.array([0.0]))


def test_lists_and_tuples_hash_alike_but_not_like_dicts():
    assert digest([1, 2]) == digest((1, 2))
    assert digest([1, [2, 3]]) != digest([1, 2, 3])
    assert digest({"a": 1}) != digest([("a", 1)])


def test_arrays_hash_dtype_shape_and_bytes():
    a = np.arange(6, dtype=np.float32)
    assert digest(a) == digest(a.copy())
    assert digest(a) != digest(a.astype(np.float64))
    assert digest(a) != digest(a.reshape(2, 3))
    assert digest(a.reshape(2, 3).T) == digest(np.ascontiguousarray(a.reshape(2, 3).T))
    assert digest(a.astype(">f4")) == digest(a)  # byte order is normalised
    b = a.copy()
    b[3] += 1e-6
    assert digest(a) != digest(b)
    with pytest.raises(HashError):
        digest(np.array([object()]))


@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=20))
def test_arrays_hash_like_their_values(xs):
    a = np.array(xs, np.float32)
    strided = np.array(xs[::-1], np.float32)[::-1]  # a non-contiguous view with the same values
    assert digest(a) == digest(strided) == digest(a.astype(">f4")), "layout and byte order never matter"
    assert digest(a) != digest(a.astype(np.float64)), "the dtype does"
    assert digest(a) != digest(a.reshape(1, -1)), "so does the shape"


def test_dataclasses_hash_by_name_and_fields():
    assert digest(Cfg()) == digest(Cfg())
    assert digest(Cfg(a=2)) != digest(Cfg())
    assert digest(Cfg(workers=16)) == digest(Cfg())  # excluded from the hash on purpose
    assert digest(Cfg()) != digest({"a": 1, "b": 0.5, "name": "x"})


def test_files_hash_by_content(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"hello")
    b.write_bytes(b"hello")
    assert digest(FileRef(str(a))) == digest(FileRef(str(b))) == digest(a)
    b.write_bytes(b"hellO")
    assert digest(FileRef(str(a))) != digest(FileRef(str(b)))
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_bytes(b"1")
    before = digest(d)
    (d / "y").write_bytes(b"2")
    assert digest(d) != before


def test_unknown_types_are_refused():
    with pytest.raises(HashError, match="object"):
        digest(object())


GOLDEN = {"cfg": [1, 2.5, "s", None, True, {"b": [1, 2], "a": b"x"}]}


def test_digest_is_stable_across_processes_and_hash_seeds():
    code = "from cirkit.engine import digest; print(digest({'cfg': [1, 2.5, 's', None, True, {'a': b'x', 'b': [1, 2]}]}))"
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        import os

        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip())
    assert outs == {digest(GOLDEN)}


def test_digest_golden_value_never_changes():
    # A change here invalidates every store in the world: only ever change it on purpose.
    assert digest([1, "a", 2.0]) == "5be271d85a8c48f5a0c4a6e86f5293d0ec45427265908a598a22a090ca65c784"


@settings(max_examples=50)
@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_int_and_float_never_collide(i):
    assert digest(i) != digest(float(i))


def test_a_zero_dimensional_array_is_not_its_one_element_vector():
    # np.ascontiguousarray turns a 0-d array into shape (1,); the digest must keep the shape it was given
    assert digest(np.array(3.0)) != digest(np.array([3.0]))
    assert digest(np.float32(2.5)) != digest(np.array([2.5], np.float32))


@given(st.lists(st.integers(0, 12), min_size=1, max_size=6), st.sampled_from(["<f4", ">f4", "<i2", ">c8", "|u1"]))
@settings(max_examples=40, deadline=None)
def test_an_array_fed_in_row_blocks_has_the_digest_of_the_whole(cuts, dtype):
    """However an array is cut into row blocks (empty ones included), in whatever byte order, with NaNs: the
    incremental digest is the whole array's, so a streamed write gets the key a whole-array write gets."""
    from cirkit.engine.hashing import ArrayHasher

    arr = np.arange(sum(cuts) * 6).reshape(-1, 2, 3).astype(dtype)
    if arr.dtype.kind in "fc" and arr.size:
        arr.flat[arr.size // 2] = np.nan
    hasher = ArrayHasher(arr.dtype, arr.shape)
    start = 0
    for n in cuts:
        hasher.update(arr[start:start + n])
        start += n
    assert hasher.hexdigest() == digest(arr) == digest(arr.astype(arr.dtype.newbyteorder("=")))


def test_row_blocks_must_make_up_the_declared_array():
    from cirkit.engine.hashing import ArrayHasher

    hasher = ArrayHasher(np.float32, (4, 2))
    hasher.update(np.zeros((3, 2), np.float32))
    with pytest.raises(HashError, match="3 rows, not the 4"):
        hasher.hexdigest()
    with pytest.raises(HashError, match="does not belong"):
        hasher.update(np.zeros((1, 3), np.float32))
    with pytest.raises(HashError, match="more than the 4"):
        hasher.update(np.zeros((2, 2), np.float32))
