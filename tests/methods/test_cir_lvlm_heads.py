"""CIR-LVLM's pooling ablation on a tiny random backbone: with a separate head, a pooling sweep reuses the
cached backbone training and fits only the head (the dry run shows it); joint training retrains everything."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mllm_fixtures import stored_triplets, triplets, write_tiny_llm

from cirkit.engine import Engine, Store
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_lvlm.heads import train_lvlm
from cirkit.methods.cir_lvlm.task import LVLMConfig, PoolingHead
from cirkit.mllm.model import MLLMConfig, PromptPoolConfig
from cirkit.training import TrainerConfig

SMALL = MLLMConfig(n_queries=2, pool=PromptPoolConfig(size=4, length=2, top_k=1), lora=LoraConfig(rank=2))
TRAINER = TrainerConfig(steps=4, batch_size=8, learning_rate=3e-3, warmup_steps=1, decay_steps=20, checkpoint_every=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    llm = write_tiny_llm(tmp_path_factory.mktemp("llm"), layers=1)
    d = triplets(16)
    return stored_triplets(d, llm)


def config(pooling: str, separate: bool) -> LVLMConfig:
    return LVLMConfig(model=dataclasses.replace(SMALL, pooling=pooling), head=PoolingHead(separate=separate, steps=3))


def statuses(store: Store, cfg: LVLMConfig, data, dry_run: bool):
    engine = Engine(store, dry_run=dry_run, progress=False)
    out = train_lvlm(engine, cfg, TRAINER, data=data)
    return {s.step: s.status for s in engine.steps}, out


def test_a_pooling_sweep_with_a_separate_head_reuses_the_backbone_training(data, tmp_path):
    store = Store(str(tmp_path))
    first, head = statuses(store, config("weighted_mean", True), data, dry_run=False)
    assert first == {"train_cir_lvlm@2": "computed", "train_cir_lvlm": "computed", "train_cir_lvlm_head": "computed"}
    for pooling in ("mean", "last"):
        dry, _ = statuses(store, config(pooling, True), data, dry_run=True)
        assert dry == {"train_cir_lvlm@2": "hit", "train_cir_lvlm": "hit", "train_cir_lvlm_head": "miss"}, pooling
    # the main (joint) path with the backbone's pooling is that same cached training
    joint, backbone = statuses(store, config("weighted_mean", False), data, dry_run=False)
    assert joint == {"train_cir_lvlm@2": "hit", "train_cir_lvlm": "hit"}
    # the head fit trains the pooling and the temperature only: the backbone's tensors come out unchanged
    fitted, trained = head.value.params, backbone.value.params
    assert set(fitted) == set(trained)
    for name in ("connector/queries", "lora/q_proj/b", "pool/prompts"):
        np.testing.assert_array_equal(fitted[name], trained[name], err_msg=name)
    assert not np.allclose(fitted["pooling/score"], trained["pooling/score"])  # refitted on the frozen backbone


def test_joint_training_retrains_the_backbone_for_another_pooling(data, tmp_path):
    store = Store(str(tmp_path))
    statuses(store, config("weighted_mean", False), data, dry_run=False)
    dry, _ = statuses(store, config("last", False), data, dry_run=True)
    assert dry == {"train_cir_lvlm@2": "miss", "train_cir_lvlm": "pending"}
