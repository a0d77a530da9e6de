"""Exact and ScaNN retrieval, score fusion and protocol switches."""

import dataclasses
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.engine import Engine, Store
from cirkit.evaluation.stages import EvalConfig, evaluate
from cirkit.retrieval.exact import exact_topk, normalise, rank_within
from cirkit.retrieval.scann_index import ScannConfig
from cirkit.retrieval.stages import FusionConfig, RetrievalConfig, build_index, fuse_gallery, fuse_queries, retrieve


def brute(q, g, k, exclude=None):
    s = normalise(q) @ normalise(g).T
    if exclude is not None:
        for i, e in enumerate(exclude):
            if e >= 0:
                s[i, e] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(g.shape[0]), s.shape), -s), axis=1)
    return order[:, :k]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 300), st.integers(1, 20), st.integers(1, 64), st.integers(1, 16),
       st.integers(0, 2**16))
def test_exact_matches_brute_force_for_any_chunking(n_q, n_g, k, chunk, qbatch, seed):
    rng = np.random.default_rng(seed)
    q, g = rng.standard_normal((n_q, 8)), rng.standard_normal((n_g, 8))
    exclude = rng.integers(-1, n_g, size=n_q)
    idx, scores = exact_topk(q, g, k, exclude=exclude, chunk_size=chunk, query_batch=qbatch)
    expected = brute(q, g, min(k, n_g), exclude)
    keep = np.isfinite(scores)
    assert np.array_equal(idx[keep], expected[keep])
    assert not np.any((idx == exclude[:, None]) & keep)


def _peak(n_gallery: int, matmul: str) -> tuple[int, int]:
    gallery = np.random.default_rng(0).standard_normal((n_gallery, 64)).astype(np.float32)
    exact_topk(gallery[:256], gallery[:8192], 50, chunk_size=8192, query_batch=64, matmul=matmul)  # jit compiles
    tracemalloc.start()
    exact_topk(gallery[:256], gallery, 50, chunk_size=8192, query_batch=64, matmul=matmul)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, gallery.nbytes


@pytest.mark.parametrize("matmul", ["numpy", "jax"])
def test_exact_search_memory_is_bounded(matmul):
    """Extra memory depends on query_batch x chunk_size, not on the gallery size (sizes are whole blocks,
    so no new block shape is compiled while measuring)."""
    small, _ = _peak(6 * 8192, matmul)
    large, nbytes = _peak(48 * 8192, matmul)
    assert large < 1.2 * small + 2**20
    assert large < nbytes / 4, f"peak {large / 2**20:.1f} MiB for a {nbytes / 2**20:.0f} MiB gallery"


def clustered(n, dim, n_clusters, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    return normalise(centres[rng.integers(0, n_clusters, n)] + spread * rng.standard_normal((n, dim)))


def test_scann_recall_against_exact_and_index_is_a_cached_artifact(tmp_path):
    gallery = clustered(20_000, 32, 100, 0)
    queries = normalise(gallery[:200] + 0.05 * np.random.default_rng(1).standard_normal((200, 32)))
    split = Split("synthetic", "val", Gallery("g", tuple(ImageRef(str(i), "") for i in range(len(gallery)))),
                  tuple(ComposedQuery(str(i), "none", "") for i in range(200)), None)
    engine = Engine(Store(str(tmp_path)), progress=False)
    cfg = ScannConfig(num_leaves=200, num_leaves_to_search=40, training_sample_size=20_000, reorder=100)
    index = engine.run(build_index, cfg, gallery=gallery)
    approx = engine.run(retrieve, RetrievalConfig(k=10, backend="scann"), split=split, queries=queries,
                        gallery=gallery, index=index, step="scann")
    exact = engine.run(retrieve, RetrievalConfig(k=10), split=split, queries=queries, gallery=gallery, index=None,
                       step="exact")
    a, e = approx.value.indices, exact.value.indices
    recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, e)])
    assert recall >= 0.9
    # the serialised index reloads from the store and gives identical results; its config is in the key
    engine2 = Engine(Store(str(tmp_path)), progress=False)
    index2 = engine2.run(build_index, cfg, gallery=gallery)
    assert engine2.steps[0].status == "hit" and index2.content == index.content
    again = engine2.run(retrieve, RetrievalConfig(k=10, backend="scann"), split=split, queries=queries,
                        gallery=gallery, index=index2)
    assert np.array_equal(again.value.indices, a)
    engine2.run(build_index, dataclasses.replace(cfg, reorder=50), gallery=gallery, step="other")
    assert engine2.steps[-1].status == "computed"


def test_fusion_equals_averaged_hybrid_scores():
    rng = np.random.default_rng(0)
    desc, imgs, caps, tau = rng.standard_normal((6, 3, 16)), rng.standard_normal((50, 16)), rng.standard_normal((50, 16)), 0.15
    expected = np.mean([(1 - tau) * normalise(desc[:, j]) @ normalise(imgs).T + tau * normalise(desc[:, j]) @ normalise(caps).T
                        for j in range(3)], axis=0)
    q = fuse_queries(None, desc)
    g = fuse_gallery(FusionConfig(tau), imgs, caps)
    assert np.allclose(q @ g.T, expected, atol=1e-5)
    idx, _ = exact_topk(q, g, 10)
    assert np.array_equal(idx, np.argsort(-expected, axis=1, kind="stable")[:, :10])


def cirr_like():
    ids = [f"im{i}" for i in range(8)]
    gallery = Gallery("g", tuple(ImageRef(i, "") for i in ids))
    queries = (ComposedQuery("0", "im0", "t"), ComposedQuery("1", "im4", "t"))
    truths = (Truth(target="im1", subset=("im0", "im1", "im2", "im3", "im5", "im6")),
              Truth(target="im5", subset=("im4", "im5", "im6", "im7", "im0", "im1")))
    return Split("cirr", "val", gallery, queries, truths)


def test_protocol_switches_are_config_fields(tmp_path):
    split = cirr_like()
    gallery = np.eye(8, dtype=np.float32)
    # each query vector is its reference (score 1) plus a bit of its target (score 0.5)
    queries = np.stack([gallery[0] + 0.5 * gallery[1], gallery[4] + 0.5 * gallery[5]])
    engine = Engine(Store(str(tmp_path)), progress=False)
    keep = engine.run(retrieve, RetrievalConfig(k=3, exclude_reference=False), split=split, queries=queries,
                      gallery=gallery, index=None, step="keep")
    drop = engine.run(retrieve, RetrievalConfig(k=3), split=split, queries=queries, gallery=gallery, index=None,
                      step="drop")
    subset = engine.run(retrieve, RetrievalConfig(k=3, subset=True), split=split, queries=queries, gallery=gallery,
                        index=None, step="subset")
    assert keep.value.ranked_ids(0)[:2] == ["im0", "im1"] and drop.value.ranked_ids(0)[0] == "im1"
    assert "im4" not in subset.value.ranked_ids(1) and set(subset.value.ranked_ids(1)) <= set(split.truths[1].subset)
    m_keep = engine.run(evaluate, EvalConfig(), split=split, ranking=keep, subset_ranking=subset, step="ev_keep").value
    m_drop = engine.run(evaluate, EvalConfig(), split=split, ranking=drop, subset_ranking=subset, step="ev_drop").value
    assert m_keep["R@1"] == 0.0 and m_drop["R@1"] == 100.0 and m_drop["Rs@1"] == 100.0
    record = engine.store.get_record(drop.key)
    assert record["config"]["exclude_reference"] is True, "the protocol choice is recorded with the artifact"


def test_rank_within_ties_and_exclusion():
    g = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    assert rank_within(np.array([[1, 0]], np.float32), g, [[2, 1, 0]]) == [[0, 1, 2]]
    assert rank_within(np.array([[1, 0]], np.float32), g, [[2, 1, 0]], exclude=[0], k=1) == [[1]]


def test_retrieve_checks_shapes(tmp_path):
    engine = Engine(Store(str(tmp_path)), progress=False)
    with pytest.raises(ValueError, match="query and"):
        engine.run(retrieve, RetrievalConfig(), split=cirr_like(), queries=np.zeros((3, 8)), gallery=np.eye(8),
                   index=None)
