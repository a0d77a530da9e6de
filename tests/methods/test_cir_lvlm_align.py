"""CIR-LVLM's connector alignment on a tiny random backbone: it lowers its own loss, the CIR training starts from
the aligned connector, an alignment setting retrains alignment and training (not the data), and steps = 0 leaves
the training's keys as they were without alignment; with real data and no caption folder it stops, saying so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mllm_fixtures import stored_triplets, triplets, write_tiny_llm

from cirkit.data.errors import DataError
from cirkit.engine import Engine, Store
from cirkit.engine.hashing import digest
from cirkit.experiment.config import build
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_lvlm.align import CaptionPairs, align_connector, align_trainer
from cirkit.methods.cir_lvlm.heads import aligned, train_lvlm
from cirkit.methods.cir_lvlm.stages import train_cir_lvlm
from cirkit.methods.cir_lvlm.task import AlignConfig, LVLMConfig
from cirkit.mllm.loading import folder_digest
from cirkit.mllm.model import MLLMConfig, PromptPoolConfig
from cirkit.pipelines.trained import CIRLVLMExperiment, alignment_captions
from cirkit.training import TrainerConfig, fit

SMALL = MLLMConfig(n_queries=2, pool=PromptPoolConfig(size=4, length=2, top_k=1), lora=LoraConfig(rank=2))
TRAINER = TrainerConfig(steps=2, batch_size=8, learning_rate=3e-3, warmup_steps=1, decay_steps=20, checkpoint_every=2)
ALIGN = AlignConfig(steps=12, batch_size=8, learning_rate=3e-2, warmup_steps=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    llm = write_tiny_llm(tmp_path_factory.mktemp("llm"), layers=1)
    d = triplets(16)
    cir = stored_triplets(d, llm)
    # captions: each image's own token pattern, so an aligned connector can match them
    c = triplets(16, seed=1, edits=16)
    captions = CaptionPairs(c["target"], c["tokens"], c["mask"], (3, 4, 5), (6, 7), llm, folder_digest(llm))
    return cir, captions


def run(store: Store, align: AlignConfig, data, dry_run: bool = False):
    engine = Engine(store, dry_run=dry_run, progress=False)
    cir, captions = data
    out = train_lvlm(engine, LVLMConfig(model=SMALL, align=align), TRAINER, data=cir, captions=captions)
    return {s.step: s.status for s in engine.steps}, out


def test_alignment_lowers_its_loss_and_the_training_starts_from_it(data, tmp_path):
    store = Store(str(tmp_path))
    steps, trained = run(store, ALIGN, data)
    assert steps == {"align_connector": "computed", "aligned_start": "computed", "train_cir_lvlm": "computed"}
    first, second = Engine(store, progress=False), Engine(store, progress=False)
    cir, captions = data
    config = LVLMConfig(model=SMALL, align=ALIGN)
    connector = fit(first, align_connector, config, align_trainer(ALIGN), data=captions).value
    start = aligned(second, config, TRAINER, data=cir, captions=captions).value
    assert {s.status for s in (*first.steps, *second.steps)} == {"hit"}
    losses = connector.losses
    assert len(losses) == ALIGN.steps and losses[-3:].mean() < losses[:3].mean()
    assert start.step == 0 and len(start.losses) == 0
    np.testing.assert_array_equal(start.params["connector/queries"], connector.params["connector/queries"])
    # the temperature restarts at the config's; the rest is the task's usual init (the LoRA's B starts at 0)
    assert not np.allclose(start.params["log_scale"], connector.params["log_scale"])
    assert not np.any(start.params["lora/q_proj/b"])
    # without alignment the same training starts from the random connector and ends elsewhere
    _, plain = run(Store(str(tmp_path / "plain")), AlignConfig(), data)
    assert not np.allclose(plain.value.params["connector/queries"], trained.value.params["connector/queries"])


def test_an_alignment_setting_retrains_alignment_and_training_only(data, tmp_path):
    store = Store(str(tmp_path))
    run(store, ALIGN, data)
    dry, _ = run(store, dataclasses.replace(ALIGN, learning_rate=1e-2), data, dry_run=True)
    assert dry == {"align_connector": "miss", "aligned_start": "pending", "train_cir_lvlm": "pending"}
    same, _ = run(store, ALIGN, data, dry_run=True)
    assert set(same.values()) == {"hit"}


def test_a_longer_run_shares_the_aligned_start_and_the_first_segments(data, tmp_path):
    """Only the number of steps changed: the run continues from the longest shared prefix (the aligned start is
    keyed without the run's length; before, a longer run retrained from a new start)."""
    store = Store(str(tmp_path))
    run(store, ALIGN, data)
    engine = Engine(store, dry_run=True, progress=False)
    cir, captions = data
    train_lvlm(engine, LVLMConfig(model=SMALL, align=ALIGN), dataclasses.replace(TRAINER, steps=4), data=cir,
               captions=captions)
    assert {s.step: s.status for s in engine.steps} == {"align_connector": "hit", "aligned_start": "hit",
                                                        "train_cir_lvlm@2": "hit", "train_cir_lvlm": "miss"}


def test_steps_zero_keeps_the_training_keys_of_no_alignment(data, tmp_path):
    store = Store(str(tmp_path))
    off, _ = run(store, AlignConfig(), data)
    assert off == {"train_cir_lvlm": "computed"}
    # the same segments as a training without any alignment code in its path (the keys of existing caches)
    engine = Engine(store, progress=False)
    fit(engine, train_cir_lvlm, LVLMConfig(model=SMALL), TRAINER, data=data[0])
    assert [s.status for s in engine.steps] == ["hit"]
    # the config's key ignores the alignment block (its settings reach the training through its checkpoint)
    assert digest(LVLMConfig(model=SMALL, align=ALIGN)) == digest(LVLMConfig(model=SMALL))
    other, _ = run(store, AlignConfig(steps=0, learning_rate=1e-1, images=3), data, dry_run=True)
    assert other == {"train_cir_lvlm": "hit"}


def test_alignment_on_real_files_without_a_caption_folder_says_what_to_set():
    config = build(CIRLVLMExperiment, {"setup": {"data": {"source": "files", "layout": "cirr", "root": "/data/cirr",
                                                          "clip": "/models/clip"}},
                                       "lvlm": {"align": {"steps": 5}}}, source="test")
    with pytest.raises(DataError, match="lvlm.align.captions"):
        alignment_captions(None, config, "llm", None)
