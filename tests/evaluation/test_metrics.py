"""Metrics against hand-computed values, with the protocol choices spelled out."""

import pytest

from cirkit.evaluation import metrics as m


def test_recall_at_k():
    ranked = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]]
    assert m.recall_at_k(ranked, ["a", "a", "a"], (1, 2, 3)) == {"R@1": pytest.approx(100 / 3, abs=1e-3), "R@2": pytest.approx(200 / 3, abs=1e-3), "R@3": 100.0}
    assert m.recall_at_k([["x"], ["a"]], [None, "a"], (1,)) == {"R@1": 100.0}, "queries without a target are skipped"
    with pytest.raises(ValueError):
        m.recall_at_k([["a"]], [None])


def test_circo_map_divides_by_min_gt_and_k():
    # gts {a, b, c}; hits at ranks 1 and 3 -> AP@5 = (1/1 + 2/3) / min(3, 5)
    ranked = [["a", "x", "b", "y", "z"]]
    assert m.circo_map_at_k(ranked, [["a", "b", "c"]], (5,))["mAP@5"] == pytest.approx(100 * (1 + 2 / 3) / 3, abs=1e-3)
    # K=2 < #gt: AP@2 = (1/1) / min(3, 2)
    assert m.circo_map_at_k(ranked, [["a", "b", "c"]], (2,))["mAP@2"] == pytest.approx(50.0)
    # a repeat keeps its place and never counts ("once"); the official script counts it again
    assert m.circo_map_at_k([["a", "a", "b"]], [["a", "b"]], (3,))["mAP@3"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m.circo_map_at_k([["a", "a", "b"]], [["a", "b"]], (3,), "official")["mAP@3"] == pytest.approx(
        100 * (1 + 1 + 1) / 2)


def test_circo_metrics_recall_uses_the_target_only_and_aspects():
    ranked = [["b", "a"], ["c", "d"]]
    out = m.circo_metrics(ranked, targets=["a", "d"], gts=[["a", "b"], ["d"]], aspects=[["color"], ["color", "count"]],
                          ks=(1, 2))
    assert out["R@1"] == 0.0 and out["R@2"] == 100.0
    assert out["mAP@1"] == pytest.approx(50.0)  # query 1 AP@1 = 1, query 2 AP@1 = 0
    assert out["mAP@10 color"] == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert out["mAP@10 count"] == pytest.approx(50.0)


def test_recall_subset_and_genecis():
    assert m.recall_subset_at_k([["t", "u", "v"]], ["u"]) == {"Rs@1": 0.0, "Rs@2": 100.0, "Rs@3": 100.0}
    assert m.genecis_recall([["a", "b"], ["b", "a"]], ["a", "a"]) == {"R@1": 50.0, "R@2": 100.0, "R@3": 100.0}


def test_fashioniq_average_is_over_categories():
    out = m.fashioniq_average({"dress": {"R@10": 10.0, "R@50": 30.0}, "shirt": {"R@10": 20.0, "R@50": 40.0},
                               "toptee": {"R@10": 30.0, "R@50": 50.0}})
    assert out["avg R@10"] == 20.0 and out["avg R@50"] == 40.0 and out["avg"] == 30.0 and out["shirt R@50"] == 40.0


def test_chat_hits_are_cumulative():
    rounds = [[["x"], ["t2"]], [["t1"], ["y"]], [["z"], ["w"]]]
    assert m.chat_hits(rounds, ["t1", "t2"], k=1) == {"Hits@1 r0": 50.0, "Hits@1 r1": 100.0, "Hits@1 r2": 100.0}


def test_metrics_are_stored_at_full_precision():
    """Rounding is for display only: 1/3 stays 33.333...33 and the FashionIQ average is over unrounded values."""
    thirds = m.recall_at_k([["a"], ["b"], ["b"]], ["a", "a", "a"], (1,))["R@1"]
    assert thirds == pytest.approx(100.0 / 3, abs=1e-12)
    assert m.chat_hits([[["t"], ["x"], ["x"]]], ["t", "t", "t"], k=1)["Hits@1 r0"] == pytest.approx(100.0 / 3, abs=1e-12)
    per_cat = {"dress": {"R@10": 100 / 3, "R@50": 200 / 3}, "shirt": {"R@10": 100 / 7, "R@50": 50.0},
               "toptee": {"R@10": 100 / 9, "R@50": 1e-7}}
    out = m.fashioniq_average(per_cat)
    assert out["avg R@10"] == pytest.approx((100 / 3 + 100 / 7 + 100 / 9) / 3, abs=1e-12)
    assert out["avg R@50"] == pytest.approx((200 / 3 + 50.0 + 1e-7) / 3, abs=1e-12)
    assert out["avg"] == pytest.approx((out["avg R@10"] + out["avg R@50"]) / 2, abs=1e-12)
    ap = m.circo_map_at_k([["x", "a", "y", "b"]], [["a", "b", "c"]], (5,))["mAP@5"]
    assert ap == pytest.approx(100 * (1 / 2 + 2 / 4) / 3, abs=1e-12)
