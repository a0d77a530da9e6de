"""Loaders, data check and submission files against the benchmarks' real annotation files."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner
from conftest import make_images

from cirkit.cli import main
from cirkit.data.check import check_split
from cirkit.data.errors import DataError
from cirkit.data.loaders import load_split
from cirkit.evaluation.submissions import cirr_submission, read_circo_submission, read_cirr_submission


def test_cirr_test1(real_annotations):
    split = load_split("cirr", str(real_annotations / "cirr"), split="test1")
    assert (len(split.queries), len(split.gallery.images)) == (4148, 2315)
    q, t = split.queries[0], split.truths[0]
    assert q.id == "12063" and q.reference == "test1-147-1-img1" and t.target is None and len(t.subset) == 6


def test_circo_val_and_test(real_annotations, tmp_path):
    root = real_annotations / "circo"
    with pytest.raises(DataError, match="image_info_unlabeled2017.json"):
        load_split("circo", str(root), split="val")
    queries_only = load_split("circo", str(root), split="test", require_gallery=False)
    assert len(queries_only.queries) == 800 and queries_only.truths is None
    val = json.loads((root / "val.json").read_text())
    ids = sorted({i for e in val for i in (e["reference_img_id"], *e["gt_img_ids"])})
    info = {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in ids]}
    (tmp_path / "annotations").mkdir()
    shutil.copy(root / "val.json", tmp_path / "annotations" / "val.json")
    (tmp_path / "image_info_unlabeled2017.json").write_text(json.dumps(info))
    split = load_split("circo", str(tmp_path), split="val")
    assert len(split.queries) == 220 and len(split.gallery.images) == len(ids)
    t = split.truths[0]
    assert t.target == "355099" and t.targets == ("355099", "528417", "534704") and "cardinality" in t.aspects
    assert split.queries[0].shared_concept == "a girl with a traditional Chinese umbrella"
    assert split.gallery.images[0].path.endswith(f"COCO2017_unlabeled/unlabeled2017/{ids[0]:012d}.jpg")


@pytest.mark.parametrize("category,n_val", [("dress", 2017), ("shirt", 2038), ("toptee", 1961)])
def test_fashioniq_val(real_annotations, category, n_val):
    split = load_split("fashioniq", str(real_annotations / "fashioniq"), split="val", category=category)
    assert len(split.queries) == n_val and split.truths[0].category == category
    raw = json.loads((real_annotations / "fashioniq" / f"cap.{category}.val.json").read_text())[0]
    assert split.queries[0].text == f"{raw['captions'][0]} and {raw['captions'][1]}"
    assert split.queries[0].reference == raw["candidate"] and split.truths[0].target == raw["target"]


def test_fashioniq_caption_join_is_configurable(real_annotations):
    root = str(real_annotations / "fashioniq")
    test = load_split("fashioniq", root, split="test", category="dress", join="{c1}; {c0}", strip_captions=True)
    assert test.truths is None and test.queries[0].text == "short and black; yello and more flowing"


def test_data_check_counts_missing_and_undecodable(real_annotations, tmp_path):
    root = tmp_path / "cirr"
    root.mkdir()
    for name in ("cap.rc2.test1.json", "split.rc2.test1.json"):
        shutil.copy(real_annotations / "cirr" / name, root / name)
    names = json.loads((root / "split.rc2.test1.json").read_text())
    paths = [root / rel for rel in names.values()]
    make_images(paths)
    os.remove(paths[0])
    paths[1].write_bytes(b"not a png")
    report = check_split(load_split("cirr", str(root), split="test1"))
    assert (report.queries, report.images) == (4148, 2315)
    assert report.missing == [os.path.normpath(paths[0])] and [p for p, _ in report.undecodable] == [os.path.normpath(paths[1])]
    result = CliRunner().invoke(main, ["data", "check", "cirr", str(root), "--split", "test1"])
    assert result.exit_code == 1 and "4148" in result.output and "2315" in result.output
    assert "missing" in result.output and "undecodable" in result.output


def test_malformed_annotations_name_file_and_field(real_annotations, tmp_path):
    entries = json.loads((real_annotations / "cirr" / "cap.rc2.test1.json").read_text())
    entries[7]["caption"] = 42
    (tmp_path / "cap.rc2.test1.json").write_text(json.dumps(entries))
    shutil.copy(real_annotations / "cirr" / "split.rc2.test1.json", tmp_path)
    with pytest.raises(DataError) as info:
        load_split("cirr", str(tmp_path), split="test1")
    assert f"{tmp_path / 'cap.rc2.test1.json'}: entry 7: field 'caption': expected str, found int 42" in str(info.value)
    result = CliRunner().invoke(main, ["data", "check", "cirr", str(tmp_path), "--split", "test1"])
    assert result.exit_code == 1 and "field 'caption'" in result.output


def test_cirr_subset_submission_matches_the_official_example(real_annotations):
    split = load_split("cirr", str(real_annotations / "cirr"), split="test1")
    example_path = str(real_annotations / "cirr" / "test1_pred_ranks_recall_subset_example.json")
    metric, example = read_cirr_submission(example_path, split)
    assert metric == "recall_subset" and len(example) == 4148
    for q, t in zip(split.queries, split.truths):
        assert set(example[q.id]) <= set(t.subset) - {q.reference}, "the example ranks within the subset, reference removed"
    ours = cirr_submission({q.id: [m for m in t.subset if m != q.reference] for q, t in zip(split.queries, split.truths)},
                           "recall_subset")
    official = json.loads(open(example_path).read())
    assert set(ours) == set(official) and ours["version"] == official["version"] == "rc2"
    assert all(len(ours[k]) == 3 for k in ours if k not in ("version", "metric"))
    recall = cirr_submission({q.id: list(split.gallery.ids()[:50]) for q in split.queries}, "recall")
    assert all(len(v) == 50 for k, v in recall.items() if k not in ("version", "metric"))


def test_evaluate_scores_the_official_circo_example(real_annotations):
    root = real_annotations / "circo"
    result = CliRunner().invoke(main, ["evaluate", "circo", "--annotations", str(root), "--predictions",
                                       str(root / "submission_val_example.json"), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    split = load_split("circo", str(root), split="val", require_gallery=False)
    ranked = read_circo_submission(str(root / "submission_val_example.json"), split)
    hits = sum(t.target in ranked[q.id][:50] for q, t in zip(split.queries, split.truths))
    assert scores["R@50"] == pytest.approx(100 * hits / 220, abs=1e-3)
    assert set(scores) >= {"mAP@5", "mAP@10", "mAP@25", "mAP@50", "R@5", "R@10", "R@25", "R@50"}
    assert any(k.startswith("mAP@10 ") for k in scores)
    assert scores["mAP@5"] <= scores["mAP@10"] <= scores["mAP@25"] <= scores["mAP@50"] + 1e-9


def test_evaluate_rejects_a_malformed_prediction_file(real_annotations, tmp_path):
    root = real_annotations / "circo"
    bad = json.loads((root / "submission_val_example.json").read_text())
    bad["3"] = ["000000000001"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = CliRunner().invoke(main, ["evaluate", "circo", "--annotations", str(root), "--predictions",
                                       str(tmp_path / "bad.json")])
    assert result.exit_code == 1 and "query 3: expected a list of integer image ids" in result.output


def test_cirr_test1_submission_end_to_end(real_annotations, tmp_path):
    """Random embeddings through the real retrieve and make_submission stages give server-valid files."""
    import numpy as np

    from cirkit.engine import Engine, Store
    from cirkit.evaluation.stages import SubmissionConfig, make_submission
    from cirkit.retrieval.stages import RetrievalConfig, retrieve

    split = load_split("cirr", str(real_annotations / "cirr"), split="test1")
    rng = np.random.default_rng(0)
    gallery, queries = rng.standard_normal((2315, 8)), rng.standard_normal((4148, 8))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    full = engine.run(retrieve, RetrievalConfig(k=50), split=split, queries=queries, gallery=gallery, index=None,
                      step="full")
    sub = engine.run(retrieve, RetrievalConfig(k=3, subset=True), split=split, queries=queries, gallery=gallery,
                     index=None, step="subset")
    files = engine.run(make_submission, SubmissionConfig(), split=split, ranking=full, subset_ranking=sub).value
    for metric in ("recall", "recall_subset"):
        path = tmp_path / f"{metric}.json"
        path.write_text(json.dumps(files[metric]))
        assert read_cirr_submission(str(path), split)[0] == metric
    refs = {q.id: q.reference for q in split.queries}
    assert all(refs[k] not in v for k, v in files["recall"].items() if k not in ("version", "metric"))
    example = json.loads((real_annotations / "cirr" / "test1_pred_ranks_recall_subset_example.json").read_text())
    assert set(files["recall_subset"]) == set(example)
