"""The training triplets store each frozen image's states once and the triplets as row numbers into them: on a
real split (image files, a tiny random CLIP tower) every triplet's rows hold its own images' states, a shared image
is stored once, dropped queries' images are not stored; and training on the gathered batches gives exactly the
weights that training on per-triplet copies of the same states gives (the layout the store used to hold)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mllm_fixtures import cot_triplets, write_tiny_llm

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.encoders.interface import ModelRef
from cirkit.engine import Engine, Store, StoredArray
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_cot.stages import cot_task
from cirkit.methods.cir_cot.task import CoTConfig, CoTTask
from cirkit.methods.cir_lvlm.stages import lvlm_task
from cirkit.methods.cir_lvlm.task import LVLMConfig, LVLMTask
from cirkit.mllm.data import TrainingTriplets, _image_states, _states, training_triplets
from cirkit.mllm.loading import folder_digest
from cirkit.mllm.model import MLLMConfig, PromptPoolConfig, PromptTexts, backbone
from cirkit.mllm.vision import load_vision
from cirkit.training import ArraySource, TrainerConfig, train
from cirkit.training.data import batch_indices, steps_per_epoch

SMALL = MLLMConfig(n_queries=2, pool=PromptPoolConfig(size=4, length=2, top_k=1), lora=LoraConfig(rank=2))
# query i: (reference, target, CIRR subset); images 0 and 1 are used by several queries, in several roles
QUERIES = [(0, 1, (0, 1, 2, 3)), (1, 0, (1, 0, 4)), (0, 2, (2, 0, 3)), (3, 1, (3, 1, 0)), (4, 1, (1, 4, 2))]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pytest.importorskip("torch", reason="the tiny CLIP tower is written by transformers + torch (the test extra)")
    from clip_fixtures import make_clip_checkpoint
    from PIL import Image

    base = tmp_path_factory.mktemp("triplets")
    make_clip_checkpoint(base / "clip", image_size=16, patch=8, hidden=32, layers=1, projection=16)
    rng = np.random.default_rng(0)
    images = []
    for i in range(6):  # image 5 is in the gallery but no query uses it
        path = base / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
        images.append(ImageRef(f"im{i}", str(path)))
    queries = tuple(ComposedQuery(f"q{i}", f"im{r}", "make it red") for i, (r, _, _) in enumerate(QUERIES))
    truths = tuple(Truth(target=f"im{t}", subset=tuple(f"im{s}" for s in sub)) for _, t, sub in QUERIES)
    split = Split("cirr", "train", Gallery("train", tuple(images)), queries, truths)
    vision = ModelRef("clip", str(base / "clip"), folder_digest(str(base / "clip")))
    return split, vision


def state_of(vision: ModelRef, path: str) -> np.ndarray:
    return load_vision(vision.path, vision.digest).states_of_files([path])[0]


def test_each_used_image_is_stored_once_and_the_triplets_point_at_their_own(world):
    split, vision = world
    images, reference, target, negative = _states(split, vision)
    images = images.to_numpy()  # the stage hands the engine a stream of tower batches
    assert len(images) == 5 and reference.dtype == target.dtype == negative.dtype == np.int32  # not im5
    paths = {im.id: im.path for im in split.gallery.images}
    first_miss = [2, 4, 3, 0, 2]  # each subset's first member that is neither the reference nor the target
    for i, (r, t, _) in enumerate(QUERIES):
        for rows, image in ((reference, r), (target, t), (negative, first_miss[i])):
            np.testing.assert_allclose(images[rows[i]], state_of(vision, paths[f"im{image}"]), atol=1e-5)
    assert reference[0] == reference[2] == target[1]  # im0: one row, whatever role the query gives it


def test_dropped_queries_images_are_not_stored(world):
    split, vision = world
    keep = np.array([False, False, True, False, True])  # q2 uses im0, im2; q4 uses im4, im1
    images, reference, target, negative = _states(split, vision, keep, negatives=False)
    images = images.to_numpy()
    assert negative is None and len(images) == 4 and len(reference) == len(target) == 2
    paths = {im.id: im.path for im in split.gallery.images}
    np.testing.assert_allclose(images[target[0]], state_of(vision, paths["im2"]), atol=1e-5)
    np.testing.assert_allclose(images[reference[1]], state_of(vision, paths["im4"]), atol=1e-5)


def test_states_computed_a_few_batches_at_a_time_are_those_of_one_call(world, monkeypatch):
    split, vision = world
    tower = load_vision(vision.path, vision.digest)
    monkeypatch.setattr(tower, "batch_size", 4)  # 11 paths: blocks of 4, 4 and 3 images
    paths = [im.path for im in split.gallery.images] + [split.gallery.images[0].path] * 5
    stream = _image_states(vision, paths)
    blocks = list(stream.blocks())
    assert stream.rows == 11 and [len(b) for b in blocks] == [4, 4, 3]  # one tower batch held at a time
    np.testing.assert_array_equal(np.concatenate(blocks), tower.states_of_files(paths))


def test_the_stage_stores_the_image_table_and_reads_back_the_same_triplets(world, tmp_path):
    split, vision = world
    llm = write_tiny_llm(tmp_path / "llm", layers=1)
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    first = engine.run(training_triplets, PromptTexts(max_text_tokens=8), split=split, llm=llm, vision=vision).value
    again = Engine(Store(str(tmp_path / "store")), progress=False)
    stored = again.run(training_triplets, PromptTexts(max_text_tokens=8), split=split, llm=llm, vision=vision)
    assert [s.status for s in again.steps] == ["hit"]
    value = stored.value
    assert isinstance(value, TrainingTriplets) and value.images.shape[0] == 5 and value.dim == 32
    for name in ("images", "reference", "target", "negative", "tokens", "mask"):
        np.testing.assert_array_equal(getattr(value, name), getattr(first, name), err_msg=name)
    batch = value.source().batch(np.array([4, 0]))
    assert batch["reference"].shape == (2, value.images.shape[1], 32) and batch["negative"].shape[0] == 2


def test_batches_read_from_the_stored_table_are_those_of_the_table_in_memory(world, tmp_path, monkeypatch):
    """The stored table loads as a handle (chunks of one image here, so a batch reads several) and every batch of
    two epochs of the trainer's order is the one a source over the whole table in memory gives."""
    import cirkit.engine.arrays as arrays_module

    split, vision = world
    llm = write_tiny_llm(tmp_path / "llm", layers=1)
    images = _states(split, vision)[0].to_numpy()
    monkeypatch.setattr(arrays_module, "CHUNK_BYTES", images[0].nbytes)
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    engine.run(training_triplets, PromptTexts(max_text_tokens=8), split=split, llm=llm, vision=vision)
    value = Engine(Store(str(tmp_path / "store")), progress=False).run(
        training_triplets, PromptTexts(max_text_tokens=8), split=split, llm=llm, vision=vision).value
    assert isinstance(value.images, StoredArray) and value.images.chunk_rows == 1
    in_memory = dataclasses.replace(value, images=images).source()
    stored = value.source()
    for step in range(2 * steps_per_epoch(len(stored), 2)):
        rows = batch_indices(7, step, 2, len(stored))
        want, got = in_memory.batch(rows), stored.batch(rows)
        assert set(got) == set(want) == {"reference", "target", "negative", "tokens", "mask"}
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"step {step} {name}")


def shared_images(n: int, m: int, seed: int = 0):
    """``cot_triplets(n)`` whose reference, target and near miss are rows of an ``m``-image table (so shared)."""
    rng = np.random.default_rng(seed)
    d = cot_triplets(n)
    table = rng.standard_normal((m,) + d["reference"].shape[1:]).astype(np.float32)
    rows = {k: rng.integers(0, m, n).astype(np.int32) for k in ("reference", "target", "negative")}
    return d, table, rows


@pytest.mark.parametrize("method", ["lvlm", "cot"])
def test_training_on_gathered_rows_gives_the_weights_of_per_triplet_copies(method, tmp_path):
    llm = write_tiny_llm(tmp_path / "llm", layers=1)
    d, table, rows = shared_images(16, 6)
    trainer = TrainerConfig(steps=3, batch_size=8, learning_rate=3e-3, warmup_steps=1, decay_steps=20)
    data = TrainingTriplets(table, rows["reference"], rows["target"], d["tokens"], d["mask"], (3, 4, 5), (6, 7), llm,
                            folder_digest(llm), labels=d["labels"] if method == "cot" else None,
                            negative=rows["negative"] if method == "lvlm" else None)
    copies = {k: table[v] for k, v in rows.items()} | {"tokens": d["tokens"], "mask": d["mask"]}
    bb = backbone(llm, folder_digest(llm), SMALL, table.shape[-1])
    if method == "lvlm":  # hard negatives on, so the near miss's rows reach the loss
        config = LVLMConfig(model=SMALL, hard_negatives=True)
        task, source = lvlm_task(config, data)
        old_task = LVLMTask(config, bb, (3, 4, 5), (6, 7))
    else:
        config = CoTConfig(model=SMALL, max_cot_tokens=4)
        task, source = cot_task(config, data)
        old_task = CoTTask(config, bb, (3, 4, 5), (6, 7))
        copies = {k: v for k, v in copies.items() if k != "negative"} | {"labels": d["labels"]}
    new = train(task, source, trainer)
    old = train(old_task, ArraySource(copies), trainer)
    np.testing.assert_array_equal(new.losses, old.losses)
    assert set(new.params) == set(old.params)
    for name, value in old.params.items():
        np.testing.assert_array_equal(new.params[name], value, err_msg=name)
    assert not np.array_equal(new.params["connector/queries"], np.asarray(task.init()["connector"]["queries"]))
