"""Loaders for the layouts whose real files are not here, on small fixtures in those layouts."""

import json

import pytest
from conftest import make_images

from cirkit.data.errors import DataError
from cirkit.data.loaders import load_split
from cirkit.data.stage import BenchmarkConfig, load_benchmark
from cirkit.engine import Engine, Store


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def cirr_val(tmp_path):
    names = {f"dev-{i}-img{j}": f"./dev/dev-{i}-img{j}.png" for i in range(4) for j in range(2)}
    write(tmp_path / "image_splits" / "split.rc2.val.json", names)
    ids = list(names)
    entries = [{"pairid": i, "reference": ids[i], "target_hard": ids[i + 1], "target_soft": {ids[i + 1]: 1.0},
                "caption": f"change {i}", "img_set": {"id": i, "members": ids[i : i + 6], "reference_rank": 0}}
               for i in range(2)]
    write(tmp_path / "captions" / "cap.rc2.val.json", entries)
    make_images([tmp_path / p for p in names.values()])
    return tmp_path


def test_cirr_official_layout_with_targets(cirr_val):
    split = load_split("cirr", str(cirr_val), split="val")
    assert len(split.gallery.images) == 8 and split.truths[1].target == "dev-1-img0"
    assert split.gallery.images[0].path == str(cirr_val / "dev" / "dev-0-img0.png")
    assert split.truths[0].subset[0] == "dev-0-img0"


def test_unknown_image_in_captions_is_named(cirr_val):
    entries = json.loads((cirr_val / "captions" / "cap.rc2.val.json").read_text())
    entries[1]["target_hard"] = "dev-99-img0"
    write(cirr_val / "captions" / "cap.rc2.val.json", entries)
    with pytest.raises(DataError, match="entry 1: image 'dev-99-img0' is not in .*split.rc2.val.json"):
        load_split("cirr", str(cirr_val), split="val")


def test_load_stage_hashes_images_and_notices_replaced_files(cirr_val, tmp_path, monkeypatch):
    monkeypatch.setenv("CIRKIT_CACHE", str(tmp_path / "cache"))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    config = BenchmarkConfig("cirr", split="val")
    first = engine.run(load_benchmark, config, root=str(cirr_val))
    assert all(len(im.content) == 64 for im in first.value.gallery.images)
    make_images([cirr_val / "dev" / "dev-0-img0.png"], size=(9, 9))
    engine2 = Engine(Store(str(tmp_path / "store")), progress=False)
    second = engine2.run(load_benchmark, config, root=str(cirr_val))
    assert engine2.steps[0].status == "read"
    changed = [a.id for a, b in zip(first.value.gallery.images, second.value.gallery.images) if a.content != b.content]
    assert changed == ["dev-0-img0"]
    before = sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file())
    make_images([cirr_val / "dev" / "dev-1-img0.png"], size=(7, 7))
    dry = Engine(Store(str(tmp_path / "store")), dry_run=True, progress=False)
    third = dry.run(load_benchmark, config, root=str(cirr_val))
    assert dry.steps[0].status == "read" and third.value.gallery.images[2].content != second.value.gallery.images[2].content
    assert sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file()) == before, "a dry run stores nothing"


def test_genecis_tasks(tmp_path):
    coco = [{"reference": {"val_image_id": 1}, "target": {"val_image_id": 2}, "condition": "dog",
             "gallery": [{"val_image_id": 3}, {"val_image_id": 4}]}]
    vg = [{"reference": {"image_id": 10, "instance_bbox": [1, 2, 30, 40]},
           "target": {"image_id": 11, "instance_bbox": [0, 0, 5, 5]}, "condition": "color",
           "gallery": [{"image_id": 12, "instance_bbox": [3, 3, 9, 9]}]}]
    write(tmp_path / "change_object.json", coco)
    write(tmp_path / "focus_attribute.json", vg)
    obj = load_split("genecis", str(tmp_path), task="change_object")
    assert obj.query_galleries == (("2", "3", "4"),) and obj.truths[0].target == "2"
    assert obj.gallery.images[0].path.endswith("val2017/000000000001.jpg")
    att = load_split("genecis", str(tmp_path), task="focus_attribute")
    target = next(im for im in att.gallery.images if im.id == att.truths[0].target)
    assert target.box == (0.0, 0.0, 5.0, 5.0) and target.path.endswith("VG_100K/11.jpg")
    write(tmp_path / "focus_object.json", [{"reference": {"val_image_id": 1}, "target": {}, "gallery": [], "condition": "x"}])
    with pytest.raises(DataError, match="entry 0 target: field 'image_id' is missing"):
        load_split("genecis", str(tmp_path), task="focus_object")


@pytest.mark.parametrize("dataset,filename", [("flickr30k", "dataset_flickr30k.json"), ("mscoco", "dataset_coco.json")])
def test_karpathy_test_splits(tmp_path, dataset, filename):
    images = [{"filename": f"{i}.jpg", "filepath": "val2014" if dataset == "mscoco" else None, "split": split,
               "imgid": i, "sentences": [{"raw": f"caption {i}.{j}", "sentid": 10 * i + j} for j in range(5)]}
              for i, split in enumerate(["test", "train", "test", "val"])]
    for im in images:
        if im["filepath"] is None:
            del im["filepath"]
    write(tmp_path / filename, {"images": images, "dataset": dataset})
    split = load_split(dataset, str(tmp_path))
    assert len(split.gallery.images) == 2 and len(split.queries) == 10
    assert split.queries[5].text == "caption 2.0" and split.truths[5].target == "2.jpg"
    sub = "val2014/" if dataset == "mscoco" else "flickr30k-images/"
    assert split.gallery.images[0].path.endswith(sub + "0.jpg")


def test_visdial_chat_queries(tmp_path):
    space = [f"val2018/VisualDialog_val2018_{i:012d}.jpg" for i in range(5)]
    dialogs = [{"img": space[3], "dialog": ["a cat on a sofa", "is it black? yes", "any people? no"]}]
    write(tmp_path / "Search_Space_val_50k.json", space)
    write(tmp_path / "VisDial_v1.0_queries_val.json", dialogs)
    split = load_split("visdial", str(tmp_path))
    q = split.queries[0]
    assert q.text_at(0) == "a cat on a sofa" and q.text_at(2) == "a cat on a sofa, is it black? yes, any people? no"
    assert split.truths[0].target == space[3] and len(split.gallery.images) == 5
    write(tmp_path / "VisDial_v1.0_queries_val.json", [{"img": "elsewhere.jpg", "dialog": ["x"]}])
    with pytest.raises(DataError, match="not in the search space"):
        load_split("visdial", str(tmp_path))


def test_unknown_benchmark_and_option():
    with pytest.raises(DataError, match="unknown benchmark"):
        load_split("nope", "/tmp")
    with pytest.raises(DataError, match="unknown option"):
        load_split("cirr", "/tmp", category="dress")


def test_evaluate_a_cirr_recall_file_on_val(tmp_path):
    from click.testing import CliRunner

    from cirkit.cli import main

    names = {f"dev-{i}-img0": f"./dev/dev-{i}-img0.png" for i in range(60)}
    ids = list(names)
    write(tmp_path / "image_splits" / "split.rc2.val.json", names)
    entries = [{"pairid": i, "reference": ids[i], "target_hard": ids[i + 1], "caption": "c",
                "img_set": {"id": i, "members": ids[i : i + 6], "reference_rank": 0}} for i in range(4)]
    write(tmp_path / "captions" / "cap.rc2.val.json", entries)
    ranked = {str(i): [ids[j] for j in range(60) if j != i][:50] for i in range(4)}  # targets at ranks 1,2,3,4 (or 1)
    preds = {"version": "rc2", "metric": "recall", **ranked}
    write(tmp_path / "preds.json", preds)
    result = CliRunner().invoke(main, ["evaluate", "cirr", "--annotations", str(tmp_path), "--predictions",
                                       str(tmp_path / "preds.json"), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    # query i's target ids[i+1] sits at position i in its list (ids without ids[i])... position = i
    assert scores == {"R@1": 25.0, "R@5": 100.0, "R@10": 100.0, "R@50": 100.0}
    preds["0"] = preds["0"][:10]
    write(tmp_path / "preds.json", preds)
    result = CliRunner().invoke(main, ["evaluate", "cirr", "--annotations", str(tmp_path), "--predictions",
                                       str(tmp_path / "preds.json")])
    assert result.exit_code == 1 and "query 0: expected 50 names for recall, found 10" in result.output
