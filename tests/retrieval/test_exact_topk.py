"""exact_topk's contract: ties toward the lower index at every position, results independent of chunking,
an excluded reference never returned (padded with -1 that no metric counts)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.engine import Engine, Store
from cirkit.evaluation.stages import EvalConfig, evaluate
from cirkit.retrieval.exact import exact_topk, normalise
from cirkit.retrieval.stages import RetrievalConfig, retrieve


def canonical_brute(q, g, k, exclude=None):
    """Every pair scored in float64 and rounded to float32, ordered by (score desc, index asc)."""
    s = (normalise(q)[:, None, :].astype(np.float64) * normalise(g)[None].astype(np.float64)).sum(-1).astype(np.float32)
    if exclude is not None:
        for i, e in enumerate(exclude):
            if e >= 0:
                s[i, e] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(g)), s.shape), -s), axis=1)[:, :k]
    top = np.take_along_axis(s, order, 1)
    return np.where(np.isfinite(top), order, -1), top


def test_identical_rows_k3_is_the_first_three_at_any_chunk():
    gallery = np.ones((1000, 8), np.float32)  # the example: every row ties
    for chunk in (1000, 256, 7):
        idx, _ = exact_topk(gallery[:1], gallery, 3, chunk_size=chunk)
        assert idx.tolist() == [[0, 1, 2]], chunk


def test_five_identical_best_rows_scattered_over_chunks():
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((1000, 4)).astype(np.float32) - 5
    best = [0, 3, 40, 500, 999]
    gallery[best] = [1, 0, 0, 0]
    for chunk in (1000, 256, 41):
        idx, scores = exact_topk(np.array([[1, 0, 0, 0]], np.float32), gallery, 3, chunk_size=chunk)
        assert idx.tolist() == [[0, 3, 40]] and np.all(scores == 1.0), chunk


def test_chunk_256_and_1000_identical_on_random_data_with_ties():
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((300, 64)).astype(np.float32)
    gallery = rng.standard_normal((5000, 64)).astype(np.float32)
    gallery[100:200] = gallery[0]  # a block of exact ties that straddles chunk boundaries
    a = exact_topk(queries, gallery, 50, chunk_size=1000)
    b = exact_topk(queries, gallery, 50, chunk_size=256, query_batch=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    expected = canonical_brute(queries, gallery, 50)
    assert np.array_equal(a[0], expected[0]) and np.array_equal(a[1], expected[1])


def test_many_ties_beyond_the_candidate_pool_fall_back_to_an_exact_order():
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((3000, 16)).astype(np.float32)
    gallery[500:1500] = gallery[7]  # 1000 tied rows, far more than the pool of 2k + 16
    queries = np.concatenate([gallery[7:8], rng.standard_normal((4, 16)).astype(np.float32)])
    exclude = [7, -1, -1, -1, -1]
    for chunk in (3000, 100, 333):
        idx, scores = exact_topk(queries, gallery, 50, exclude=exclude, chunk_size=chunk)
        assert idx[0].tolist() == list(range(500, 550)), chunk
        expected = canonical_brute(queries, gallery, 50, exclude)
        assert np.array_equal(idx, expected[0]) and np.array_equal(scores, expected[1])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 200), st.integers(1, 20), st.integers(1, 64), st.integers(1, 16),
       st.integers(0, 2**16), st.booleans())
def test_any_chunking_equals_the_canonical_brute_force(n_q, n_g, k, chunk, qbatch, seed, ties):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_q, 8)).astype(np.float32)
    g = rng.integers(-1, 2, (n_g, 8)).astype(np.float32) if ties else rng.standard_normal((n_g, 8)).astype(np.float32)
    exclude = rng.integers(-1, n_g, size=n_q)
    idx, scores = exact_topk(q, g, k, exclude=exclude, chunk_size=chunk, query_batch=qbatch)
    e_idx, e_scores = canonical_brute(q, g, min(k, n_g), exclude)
    assert np.array_equal(idx, e_idx) and np.array_equal(scores, e_scores)
    assert not np.any(idx == exclude[:, None])


def test_k_at_least_gallery_pads_the_excluded_reference_with_minus_one():
    gallery = np.eye(4, dtype=np.float32)
    idx, scores = exact_topk(gallery[[0, 1]], gallery, 10, exclude=[0, -1])
    assert idx.shape == (2, 4)
    assert idx[0].tolist()[-1] == -1 and 0 not in idx[0].tolist() and scores[0, -1] == -np.inf
    assert sorted(idx[1].tolist()) == [0, 1, 2, 3]


def test_excluded_reference_never_counts_toward_recall(tmp_path):
    """A query whose (odd) target is its own reference: with the reference excluded and k >= the gallery,
    R@K must be 0 (the reference used to come back last with score -inf and count)."""
    ids = ("a", "b", "c")
    split = Split("cirr", "val", Gallery("g", tuple(ImageRef(i, "") for i in ids)),
                  (ComposedQuery("0", "a", "t"),), (Truth(target="a", subset=ids),))
    engine = Engine(Store(str(tmp_path)), progress=False)
    ranking = engine.run(retrieve, RetrievalConfig(k=50), split=split, queries=np.eye(3, dtype=np.float32)[:1],
                         gallery=np.eye(3, dtype=np.float32), index=None)
    assert ranking.value.ranked_ids(0) == ["b", "c"]
    metrics = engine.run(evaluate, EvalConfig(), split=split, ranking=ranking, subset_ranking=None).value
    assert metrics["R@50"] == 0.0


def test_jax_and_numpy_matmuls_give_the_same_ranking():
    rng = np.random.default_rng(4)
    gallery = rng.standard_normal((3000, 32)).astype(np.float32)
    gallery[1000:1100] = gallery[5]
    queries = np.concatenate([gallery[5:6], rng.standard_normal((199, 32)).astype(np.float32)])
    exclude = rng.integers(-1, 3000, 200)
    a = exact_topk(queries, gallery, 20, exclude=exclude, chunk_size=1024, query_batch=128, matmul="jax")
    b = exact_topk(queries, gallery, 20, exclude=exclude, chunk_size=700, query_batch=200, matmul="numpy")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.any(a[0] == exclude[:, None])


def test_scann_with_k_at_least_the_gallery_pads_the_excluded_reference(tmp_path):
    """The same contract for ScaNN: an excluded row is never returned, the freed slot is -1."""
    from cirkit.retrieval.scann_index import ScannConfig, build_scann, search_scann

    gallery = normalise(np.random.default_rng(6).standard_normal((40, 8)).astype(np.float32))
    index = build_scann(gallery, ScannConfig(num_leaves=2, num_leaves_to_search=2, training_sample_size=40,
                                             reorder=40), k=10)
    idx, scores = search_scann(index, gallery[:3], 50, exclude=[0, -1, 2])
    assert idx.shape == (3, 40)
    assert 0 not in idx[0].tolist() and idx[0, -1] == -1 and scores[0, -1] == -np.inf
    assert sorted(idx[1].tolist()) == list(range(40))
