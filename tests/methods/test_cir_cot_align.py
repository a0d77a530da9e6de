"""CIR-CoT's connector alignment (CIR-LVLM's stage, CIR-CoT's model) on a tiny random backbone: the training starts
from the aligned connector and nothing else of it, an alignment setting reaches the training's key only through
the aligned checkpoint (no data stage reruns), a LoRA setting does not reach the alignment's, and steps = 0
leaves the training's keys as they were. The captioning alignment (``objective = "caption"``): its next-token loss
falls, it is cached, its objective and LoRA switch reach the training's key, and the training starts from its
connector and LoRA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mllm_fixtures import cot_triplets, stored_triplets, triplets, write_tiny_llm

from cirkit.data.errors import DataError
from cirkit.engine import Engine, Store
from cirkit.engine.hashing import digest
from cirkit.experiment.config import build
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_cot.align import aligned, alignment_config
from cirkit.methods.cir_cot.caption_align import align_captioning, caption_alignment
from cirkit.methods.cir_cot.stages import train_cir_cot
from cirkit.methods.cir_cot.task import CoTAlignConfig, CoTConfig
from cirkit.methods.cir_lvlm.align import CaptionPairs, align_connector, align_trainer
from cirkit.mllm.loading import folder_digest
from cirkit.mllm.model import MLLMConfig
from cirkit.pipelines.trained import CIRCoTExperiment, alignment_captions
from cirkit.training import TrainerConfig, fit

SMALL = MLLMConfig(n_queries=2, instance_prompt=False, pooling="last", lora=LoraConfig(rank=2))
TRAINER = TrainerConfig(steps=2, batch_size=8, learning_rate=3e-3, warmup_steps=1, decay_steps=20, checkpoint_every=2)
ALIGN = CoTAlignConfig(steps=6, batch_size=8, learning_rate=3e-2, warmup_steps=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    llm = write_tiny_llm(tmp_path_factory.mktemp("llm"), layers=1)
    d = cot_triplets(16)
    cir = stored_triplets(d, llm)
    c = triplets(16, seed=1, edits=16)
    captions = CaptionPairs(c["target"], c["tokens"], c["mask"], (3, 4, 5), (6, 7), llm, folder_digest(llm))
    return cir, captions


def config(align: CoTAlignConfig = CoTAlignConfig(), model: MLLMConfig = SMALL) -> CoTConfig:
    return CoTConfig(model=model, max_cot_tokens=4, align=align)


def train(store: Store, align: CoTAlignConfig, data, dry_run: bool = False, model: MLLMConfig = SMALL):
    engine = Engine(store, dry_run=dry_run, progress=False)
    cir, captions = data
    start = aligned(engine, config(align, model), TRAINER, data=cir, captions=captions)
    out = fit(engine, train_cir_cot, config(align, model), TRAINER, data=cir, start=start)
    return {s.step: s.status for s in engine.steps}, out


def test_the_training_starts_from_the_aligned_connector_only(data, tmp_path):
    store = Store(str(tmp_path))
    steps, _ = train(store, ALIGN, data)
    assert steps == {"align_connector": "computed", "cot_aligned_start": "computed", "train_cir_cot": "computed"}
    first, second = Engine(store, progress=False), Engine(store, progress=False)
    connector = fit(first, align_connector, alignment_config(config(ALIGN)), align_trainer(ALIGN), data=data[1]).value
    start = aligned(second, config(ALIGN), TRAINER, data=data[0], captions=data[1]).value
    assert {s.status for s in (*first.steps, *second.steps)} == {"hit"}
    assert start.step == 0 and len(start.losses) == 0
    assert connector.losses[-2:].mean() < connector.losses[:2].mean()
    np.testing.assert_array_equal(start.params["connector/queries"], connector.params["connector/queries"])
    # the rest is CIR-CoT's usual init: its own embedding token, the LoRA's B at zero, the config's temperature
    fresh = aligned(Engine(Store(str(tmp_path / "other")), progress=False), config(dataclasses.replace(ALIGN, seed=1)),
                    TRAINER, data=data[0], captions=data[1]).value
    np.testing.assert_array_equal(start.params["emb_token"], fresh.params["emb_token"])
    assert not np.any(start.params["lora/q_proj/b"])
    np.testing.assert_allclose(start.params["log_scale"], np.log(1 / 0.07), rtol=1e-6)
    assert not np.allclose(start.params["connector/queries"], fresh.params["connector/queries"])


def test_an_alignment_setting_retrains_alignment_and_training_only(data, tmp_path):
    store = Store(str(tmp_path))
    train(store, ALIGN, data)
    dry, _ = train(store, dataclasses.replace(ALIGN, learning_rate=1e-2), data, dry_run=True)
    assert dry == {"align_connector": "miss", "cot_aligned_start": "pending", "train_cir_cot": "pending"}
    # the LoRA does not train in the alignment (it starts at zero): another LoRA shares the aligned connector
    wider = dataclasses.replace(SMALL, lora=LoraConfig(rank=4, targets=("q_proj", "v_proj", "down_proj")))
    other, _ = train(store, ALIGN, data, dry_run=True, model=wider)
    assert other == {"align_connector": "hit", "cot_aligned_start": "miss", "train_cir_cot": "pending"}



def test_a_longer_run_shares_the_aligned_start_and_the_first_segments(data, tmp_path):
    store = Store(str(tmp_path))
    train(store, ALIGN, data)
    engine = Engine(store, dry_run=True, progress=False)
    start = aligned(engine, config(ALIGN), dataclasses.replace(TRAINER, steps=4), data=data[0], captions=data[1])
    fit(engine, train_cir_cot, config(ALIGN), dataclasses.replace(TRAINER, steps=4), data=data[0], start=start)
    assert {s.step: s.status for s in engine.steps} == {"align_connector": "hit", "cot_aligned_start": "hit",
                                                        "train_cir_cot@2": "hit", "train_cir_cot": "miss"}


def test_steps_zero_keeps_the_training_keys_of_no_alignment(data, tmp_path):
    store = Store(str(tmp_path))
    off, _ = train(store, CoTAlignConfig(), data)
    assert off == {"train_cir_cot": "computed"}
    engine = Engine(store, progress=False)
    fit(engine, train_cir_cot, CoTConfig(model=SMALL, max_cot_tokens=4), TRAINER, data=data[0])
    assert [s.status for s in engine.steps] == ["hit"]
    assert digest(config(ALIGN)) == digest(config())
    other, _ = train(store, CoTAlignConfig(steps=0, learning_rate=1e-1, images=3), data, dry_run=True)
    assert other == {"train_cir_cot": "hit"}


def test_alignment_on_real_files_without_a_caption_folder_names_the_cot_block():
    experiment = build(CIRCoTExperiment, {"setup": {"data": {"source": "files", "layout": "cirr", "root": "/data/cirr",
                                                             "clip": "/models/clip"}},
                                          "annotations": {"source": "file", "path": "/data/cot.json"},
                                          "cot": {"align": {"steps": 5}}}, source="test")
    with pytest.raises(DataError, match="cot.align.captions"):
        alignment_captions(None, experiment, "llm", None)


CAPTION = CoTAlignConfig(steps=8, batch_size=8, learning_rate=3e-2, warmup_steps=1, objective="caption")


def test_the_captioning_alignment_lowers_its_loss_and_the_training_starts_from_its_connector_and_lora(data, tmp_path):
    store = Store(str(tmp_path))
    steps, _ = train(store, CAPTION, data)
    assert steps == {"align_captioning": "computed", "cot_aligned_start": "computed", "train_cir_cot": "computed"}
    # cached: the same alignment and start are hits
    first, second = Engine(store, progress=False), Engine(store, progress=False)
    captioned = fit(first, align_captioning, caption_alignment(config(CAPTION)), align_trainer(CAPTION),
                    data=data[1]).value
    start = aligned(second, config(CAPTION), TRAINER, data=data[0], captions=data[1]).value
    assert {s.status for s in (*first.steps, *second.steps)} == {"hit"}
    # the tiny backbone's caption tokens are a pattern of each image: the next-token loss falls
    losses = captioned.losses
    assert len(losses) == CAPTION.steps and losses[-2:].mean() < 0.9 * losses[:2].mean()
    assert start.step == 0 and len(start.losses) == 0
    for name in ("connector/queries", "lora/q_proj/b", "lora/v_proj/a"):
        np.testing.assert_array_equal(start.params[name], captioned.params[name])
    assert np.any(start.params["lora/q_proj/b"])  # the LoRA trained (B leaves zero)
    # the rest is CIR-CoT's usual init: the embedding token and temperature of a start without alignment
    fresh = aligned(Engine(Store(str(tmp_path / "other")), progress=False), config(ALIGN), TRAINER, data=data[0],
                    captions=data[1]).value
    np.testing.assert_array_equal(start.params["emb_token"], fresh.params["emb_token"])
    np.testing.assert_allclose(start.params["log_scale"], np.log(1 / 0.07), rtol=1e-6)


def test_the_alignment_objective_and_its_lora_switch_reach_the_training_key(data, tmp_path):
    store = Store(str(tmp_path))
    _, contrastive = train(store, ALIGN, data)
    _, captioning = train(store, dataclasses.replace(ALIGN, objective="caption"), data)
    assert contrastive.key != captioning.key
    # same schedule, connector only: another alignment and another training; the data stages are not involved
    frozen_lora = dataclasses.replace(ALIGN, objective="caption", lora=False)
    dry, _ = train(store, frozen_lora, data, dry_run=True)
    assert dry == {"align_captioning": "miss", "cot_aligned_start": "pending", "train_cir_cot": "pending"}
    # with the LoRA frozen in the alignment its settings do not reach the alignment's key
    wider = dataclasses.replace(SMALL, lora=LoraConfig(rank=4, targets=("q_proj", "v_proj", "down_proj")))
    keys = {digest(caption_alignment(config(frozen_lora, model))) for model in (SMALL, wider)}
    assert len(keys) == 1
    trained_lora = dataclasses.replace(ALIGN, objective="caption")
    assert digest(caption_alignment(config(trained_lora, SMALL))) != digest(caption_alignment(config(trained_lora, wider)))


def test_the_contrastive_alignment_pools_the_last_position_whatever_cot_model_pooling_says():
    # CIR-CoT's key leaves cot.model.pooling out (its embedding is the embedding token's state), so that field
    # must not reach the alignment's config either: two configs that differ only there share one alignment
    plain = config(ALIGN)
    pooled = config(ALIGN, model=dataclasses.replace(SMALL, pooling="mean"))
    assert alignment_config(pooled).model.pooling == "last"
    assert digest(alignment_config(pooled)) == digest(alignment_config(plain))
