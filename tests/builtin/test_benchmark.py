"""The built-in benchmark, cirkit's CLIP trainer and the demo pipeline, on tiny configurations."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cirkit.builtin.benchmark import BuiltinConfig, generate_files
from cirkit.builtin.edits import Edit, valid_targets
from cirkit.builtin.files import ExportConfig, export_files, pack_files
from cirkit.builtin.scenes import Obj, Scene, caption
from cirkit.cli import main
from cirkit.data.loaders import load_split
from cirkit.engine import Engine, Store

TINY = BuiltinConfig(n_train=120, n_t2i=30, n_composed=12, n_chat=6, n_chat_distractors=14)


def test_captions_and_edits():
    scene = Scene("gray", (Obj("circle", "red", "small", "top left"), Obj("circle", "red", "small", "center"),
                           Obj("square", "blue", "large", "bottom right"))).canonical()
    assert caption(scene) == ("two small red circles at the top left and center and a large blue square at the "
                              "bottom right on a gray background")
    blue = Obj("square", "blue", "large", "bottom right")
    (only,) = valid_targets(scene, Edit("colour", blue, "green"))
    assert Obj("square", "green", "large", "bottom right") in only.objects and blue not in only.objects
    added = valid_targets(scene, Edit("add", value="yellow star"))
    assert len(added) == 2 * 2  # two sizes x two free positions: several valid targets
    assert Edit("count", Obj("cross", "red", "small", "center")).text() == "there should be two red crosses"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    files = generate_files(TINY)
    assert generate_files(TINY) == files, "deterministic from the seed"
    engine = Engine(Store(str(tmp_path_factory.mktemp("store"))), progress=False)
    root = engine.run(export_files, ExportConfig(str(tmp_path_factory.mktemp("export"))), files=pack_files(files))
    return root.value, files


def test_layouts_load_through_the_real_loaders(exported):
    root, files = exported
    train = load_split("builtin_t2i", root, split="train")
    test = load_split("builtin_t2i", root, split="test")
    assert len(train.queries) == 120 and len(test.gallery.images) == 30
    cirr = load_split("cirr", root, split="val")
    circo = load_split("circo", root, split="val", images_root="images")
    chat = load_split("visdial", root)
    assert len(cirr.queries) == len(circo.queries) == 12 and len(chat.queries) == 6
    assert len(chat.gallery.images) == 20 and len(chat.queries[0].rounds) == 5
    for q, t in zip(cirr.queries, cirr.truths):
        assert len(t.subset) == 6 and q.reference in t.subset and t.target in t.subset
    for q, t in zip(circo.queries, circo.truths):
        assert t.target in t.targets and q.reference not in t.targets and t.aspects
    assert any(len(t.targets) > 1 for t in circo.truths), "open edits give several valid targets"
    assert [im.path for im in cirr.gallery.images] == [im.path for im in circo.gallery.images]


def test_ground_truth_is_exactly_the_satisfying_gallery(exported):
    """Every CIRCO-style gt list equals the set of gallery images whose scene fulfils the query's edit."""
    root, files = exported
    scenes = {int(i): Scene(s["background"], tuple(Obj(*o) for o in s["objects"])).canonical()
              for i, s in json.loads(files["scenes.json"]).items()}
    edits = json.loads(files["edits.json"])
    gallery = [im["id"] for im in json.loads(files["image_info_unlabeled2017.json"])["images"]]
    for ann, e in zip(json.loads(files["annotations/val.json"]), edits):
        edit = Edit(e["kind"], Obj(*e["target"]) if e["target"] else None, e["value"])
        valid = valid_targets(scenes[ann["reference_img_id"]], edit)
        assert sorted(i for i in gallery if scenes[i] in valid) == ann["gt_img_ids"]
        assert ann["relative_caption"] == edit.text()


def test_trained_clip_exports_a_loadable_checkpoint(tmp_path):
    from PIL import Image

    from cirkit.builtin.scenes import random_scene, render
    from cirkit.encoders.clip_encoder import ClipEncoder
    from cirkit.training.clip_trainer import TrainConfig, train_clip

    rng = np.random.default_rng(0)
    scenes = [random_scene(rng) for _ in range(64)]
    images = np.stack([np.asarray(render(s, 32)) for s in scenes])
    captions = [caption(s) for s in scenes]
    cfg = TrainConfig(steps=15, batch_size=32, width=32, layers=1, patch_size=8, projection_dim=16, learning_rate=5e-3)
    files, log = train_clip(cfg, images, captions)
    assert np.mean(log["losses"][-3:]) < log["losses"][0]
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    enc = ClipEncoder(str(tmp_path))
    assert enc.config.vision.image_size == 32 and enc.tokenizer(["a red circle"]).shape == (1, 32)
    emb = enc.encode_images([Image.fromarray(x) for x in images[:4]])
    assert emb.shape == (4, 16) and np.isfinite(emb).all()
    assert (tmp_path / "loss_curve.png").stat().st_size > 0


TINY_DEMO = """pipeline = "demo"
name = "tiny-demo"
[benchmark]
n_train = 200
n_t2i = 40
n_composed = 10
n_chat = 8
n_chat_distractors = 16
[train]
steps = 8
batch_size = 32
width = 32
layers = 1
patch_size = 16
projection_dim = 16
[export]
directory = "{export}"
"""


def test_demo_pipeline_end_to_end_and_cached_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRKIT_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "demo.toml"
    exp.write_text(TINY_DEMO.format(export=tmp_path / "export"))
    runner = CliRunner()
    args = ["demo", "--experiment", str(exp), "--store", str(tmp_path / "store"), "--quiet"]
    first = runner.invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    for table in ("text-to-image", "composed cirr", "composed circo", "chat"):
        assert f"demo: {table}" in first.output
    assert "chance" in first.output and "Hits@10 r5" in first.output and "Rs@1" in first.output
    second = runner.invoke(main, args, catch_exceptions=False)
    assert "(0 computed" in second.output
    record = json.loads(next((tmp_path / "store" / "runs").glob("*.json")).read_text())
    metrics = record["metrics"]
    assert set(metrics["composed cirr · sum"]) >= {"R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs@2", "Rs@3"}
    assert metrics["composed cirr · sum"] == metrics["composed cirr · average"], "same ranking under cosine"
    page = tmp_path / "report.html"
    result = runner.invoke(main, ["report", "tiny-demo", str(page), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "<h2>text-to-image</h2>" in text and "training loss (symmetric InfoNCE)" in text and "<img" in text
    assert text.index("<h2>text-to-image</h2>") < text.index("<h2>composed cirr</h2>") < text.index("<h2>chat</h2>")
    assert "Hits@10 over dialogue rounds" in text and "CIRCO mAP@10 per aspect" in text
