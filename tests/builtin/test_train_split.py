"""The built-in benchmark's composed train split: read by the real CIRR and FashionIQ loaders, exact ground
truth, deterministic, and disjoint from the evaluation queries' images."""

import json

import pytest

from cirkit.builtin.benchmark import BuiltinConfig, generate_files
from cirkit.builtin.edits import Edit, valid_targets
from cirkit.builtin.files import ExportConfig, export_files
from cirkit.builtin.scenes import Obj
from cirkit.builtin.stages import generate_builtin
from cirkit.builtin.train_split import TrainSplitConfig, generate_train_files, held_out_scenes, read_scenes
from cirkit.data.loaders import load_split
from cirkit.engine import Engine, Store
from cirkit.pipelines.training_data import builtin_train, load_builtin_train

# Many composed queries and few other images: enough held-out scenes that an unfiltered train split would
# reuse some of them (one-object scenes are only 1,500).
BENCH = BuiltinConfig(n_train=4, n_t2i=4, n_composed=60, n_chat=2, n_chat_distractors=2)
TRAIN = TrainSplitConfig(n_triplets=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    engine = Engine(Store(str(tmp_path_factory.mktemp("store"))), progress=False)
    export = ExportConfig(str(tmp_path_factory.mktemp("export")))
    root = builtin_train(engine, BENCH, TRAIN, export).root
    bench_root = engine.run(export_files, export, files=engine.run(generate_builtin, BENCH, step="bench"),
                             step="export_bench")
    return engine, root, generate_files(BENCH), bench_root.value


def _edit(e: dict) -> Edit:
    return Edit(e["kind"], Obj(*e["target"]) if e["target"] else None, e["value"])


def test_cirr_train_layout_has_exact_triplets(world):
    engine, root, _, _ = world
    split = load_builtin_train(engine, root, "cirr").value
    assert split.split == "train" and len(split.queries) == 60
    files_root = root.value
    scenes = read_scenes(open(f"{files_root}/scenes.json", "rb").read())
    edits = json.loads(open(f"{files_root}/edits.json").read())
    for q, t, e in zip(split.queries, split.truths, edits, strict=True):
        edit = _edit(e)
        assert q.text == edit.text()
        assert scenes[int(t.target)] in valid_targets(scenes[int(q.reference)], edit)
        assert len(t.subset) == 6 and {q.reference, t.target} <= set(t.subset)
        others = [scenes[int(m)] for m in t.subset if m not in (q.reference, t.target)]
        assert not any(s in valid_targets(scenes[int(q.reference)], edit) for s in others), "negatives are misses"
    kinds = {e["kind"] for e in edits}
    assert len(kinds) >= 5, kinds


def test_fashioniq_train_layout_splits_by_object_count(world):
    engine, root, _, _ = world
    scenes = read_scenes(open(f"{root.value}/scenes.json", "rb").read())
    total = 0
    for n, category in ((1, "dress"), (2, "shirt"), (3, "toptee")):
        split = load_split("fashioniq", root.value, split="train", category=category)
        total += len(split.queries)
        gallery = set(split.gallery.ids())
        for q, t in zip(split.queries, split.truths):
            assert len(scenes[int(q.reference)].objects) == n and t.category == category
            assert {q.reference, t.target} <= gallery
            first, _, second = q.text.partition(" and keep ")
            assert first.split(" ")[0] in ("make", "turn", "move", "remove", "add", "there", "change") and second
    assert total == 60


def test_no_train_image_shows_an_evaluation_scene_or_reuses_a_file(world):
    engine, root, bench, bench_root = world
    train = load_split("cirr", root.value, split="train")
    held = held_out_scenes(bench)
    scenes = read_scenes(open(f"{root.value}/scenes.json", "rb").read())
    assert len(held) > 300
    assert not set(scenes.values()) & held
    val_ids = {im.id for im in load_split("cirr", bench_root, split="val").gallery.images}
    assert not set(train.gallery.ids()) & val_ids
    bench_pngs = {v for k, v in bench.items() if k.startswith("images/")}
    assert not {open(im.path, "rb").read() for im in train.gallery.images} & bench_pngs


def test_deterministic_from_the_seed():
    bench = generate_files(BENCH)
    small = TrainSplitConfig(n_triplets=8)
    first = generate_train_files(small, bench)
    assert generate_train_files(small, bench) == first
    other = generate_train_files(TrainSplitConfig(seed=1, n_triplets=8), bench)
    assert other["captions/cap.rc2.train.json"] != first["captions/cap.rc2.train.json"]
