"""The real CIRR and FashionIQ train splits, on small files written in the official formats (the real train
annotation files are not in ../shared/real-annotations): what the loaders read, and the errors they give."""

import json

import pytest
from click.testing import CliRunner
from conftest import make_images

from cirkit.cli import main
from cirkit.data.errors import DataError
from cirkit.data.loaders import load_split


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def cirr_train(tmp_path):
    """CIRR's train layout: NLVR2 names, images in numbered sub-folders of img_raw/train, soft targets with the
    partial (0.5) and negative (-1.0) labels, and a target_rank in every img_set."""
    names = [f"train-{i}-{j}-img{k}" for i in range(3) for j in range(2) for k in range(2)]
    write(tmp_path / "image_splits" / "split.rc2.train.json", {n: f"./train/{i % 3}/{n}.png" for i, n in enumerate(names)})
    entries = []
    for i in range(4):
        members = names[i : i + 6]
        ref, target = members[0], members[2]
        entries.append({"pairid": 100 + i, "reference": ref, "target_hard": target,
                        "target_soft": {target: 1.0, members[3]: 0.5, members[4]: -1.0},
                        "caption": f"edit number {i}",
                        "img_set": {"id": 7 + i, "members": members, "reference_rank": 0, "target_rank": 2}})
    write(tmp_path / "captions" / "cap.rc2.train.json", entries)
    make_images([tmp_path / "img_raw" / f"train/{i % 3}/{n}.png" for i, n in enumerate(names)])
    return tmp_path


def test_cirr_train_triplets_with_nested_image_folders(cirr_train):
    split = load_split("cirr", str(cirr_train), split="train", images_root="img_raw")
    assert split.split == "train" and len(split.queries) == 4 and len(split.gallery.images) == 12
    q, t = split.queries[1], split.truths[1]
    assert (q.id, q.reference, q.text, t.target) == ("101", "train-0-0-img1", "edit number 1", "train-0-1-img1")
    assert t.subset[2] == t.target and len(t.subset) == 6
    assert split.gallery.images[4].path == str(cirr_train / "img_raw" / "train" / "1" / "train-1-0-img0.png")


def test_cirr_train_missing_target_is_named(cirr_train):
    entries = json.loads((cirr_train / "captions" / "cap.rc2.train.json").read_text())
    del entries[2]["target_hard"]
    write(cirr_train / "captions" / "cap.rc2.train.json", entries)
    with pytest.raises(DataError, match=r"cap\.rc2\.train\.json: entry 2: field 'target_hard' is missing"):
        load_split("cirr", str(cirr_train), split="train")


def test_cirr_train_split_file_must_map_names_to_paths(cirr_train):
    write(cirr_train / "image_splits" / "split.rc2.train.json", ["train-0-0-img0"])
    with pytest.raises(DataError, match=r"split\.rc2\.train\.json: expected an object mapping image names to paths"):
        load_split("cirr", str(cirr_train), split="train")


@pytest.fixture
def fashioniq_train(tmp_path):
    """FashionIQ's train layout: ASIN-like names, two relative captions per pair, one split file per category."""
    for c, category in enumerate(("dress", "shirt", "toptee")):
        names = [f"B00{c}{i:05d}" for i in range(6)]
        write(tmp_path / "image_splits" / f"split.{category}.train.json", names)
        write(tmp_path / "captions" / f"cap.{category}.train.json",
              [{"target": names[i + 1], "candidate": names[i], "captions": [f"is {category} {i}", "has sleeves"]}
               for i in range(3 + c)])
        make_images([tmp_path / "images" / f"{n}.png" for n in names])
    return tmp_path


def test_fashioniq_train_triplets(fashioniq_train):
    split = load_split("fashioniq", str(fashioniq_train), split="train", category="shirt")
    assert split.split == "train" and len(split.queries) == 4 and len(split.gallery.images) == 6
    q, t = split.queries[2], split.truths[2]
    assert (q.id, q.reference, q.text, t.target, t.category) == (
        "shirt-2", "B00100002", "is shirt 2 and has sleeves", "B00100003", "shirt")


def test_fashioniq_train_entry_with_one_caption_is_named(fashioniq_train):
    path = fashioniq_train / "captions" / "cap.toptee.train.json"
    entries = json.loads(path.read_text())
    entries[3]["captions"] = ["only one"]
    write(path, entries)
    with pytest.raises(DataError, match=r"cap\.toptee\.train\.json: entry 3: field 'captions': expected two strings"):
        load_split("fashioniq", str(fashioniq_train), split="train", category="toptee")


def test_fashioniq_train_target_outside_the_split_is_named(fashioniq_train):
    path = fashioniq_train / "captions" / "cap.dress.train.json"
    entries = json.loads(path.read_text())
    entries[0]["target"] = "B0099999"
    write(path, entries)
    with pytest.raises(DataError, match=r"entry 0: image 'B0099999' is not in .*split\.dress\.train\.json"):
        load_split("fashioniq", str(fashioniq_train), split="train", category="dress")


def test_data_check_covers_every_fashioniq_category_of_the_train_split(fashioniq_train):
    (fashioniq_train / "images" / "B00200004.png").unlink()  # a toptee image
    result = CliRunner().invoke(main, ["data", "check", "fashioniq", str(fashioniq_train), "--split", "train"])
    assert result.exit_code == 1, result.output
    assert "B00200004.png" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.split()[:2] == ["│", "train"]]
    assert [(r[2], r[4]) for r in rows] == [("dress", "3"), ("shirt", "4"), ("toptee", "5")], result.output
