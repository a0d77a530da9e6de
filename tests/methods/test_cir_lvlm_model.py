"""CIR-LVLM's model on tiny random backbones: it trains on the generic trainer (the loss falls) and its
switches change what it computes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mllm_fixtures import tiny_backbone, triplets, write_tiny_llm

from cirkit.config_checks import InvalidConfig
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_lvlm.task import LVLMConfig, LVLMTask
from cirkit.mllm.model import MLLMConfig, PromptPoolConfig
from cirkit.training import ArraySource, TrainerConfig, train

SMALL = MLLMConfig(n_queries=4, pool=PromptPoolConfig(size=6, length=2, top_k=2), lora=LoraConfig(rank=2))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("llm"), layers=3)


def make_task(llm: str, model: MLLMConfig = SMALL) -> LVLMTask:
    return LVLMTask(LVLMConfig(model=model), tiny_backbone(llm, model), (3, 4, 5), (6, 7))


def test_a_tiny_backbone_learns_the_triplets_on_the_generic_trainer(llm):
    task = make_task(llm)
    config = TrainerConfig(steps=30, batch_size=16, learning_rate=3e-3, warmup_steps=2, decay_steps=200,
                           weight_decay=0.0)  # without decay only parameters with a gradient move
    # two dispatches of 15 steps: one compiled program (the trainer picks 15 for 30 steps by itself now)
    checkpoint = train(task, ArraySource(triplets(16)), config)
    assert checkpoint.losses[-5:].mean() < 0.5 * checkpoint.losses[:5].mean(), checkpoint.losses
    assert not any(name.startswith("llm/") for name in checkpoint.params)  # the LLM stays frozen, out of it
    assert {"connector/queries", "pool/keys", "lora/q_proj/b", "pooling/score", "log_scale"} <= set(checkpoint.params)
    moved = np.abs(checkpoint.params["pool/keys"] - np.asarray(task.init()["pool"]["keys"])).sum(axis=1)
    assert (moved > 0).sum() >= 2  # top-K has no gradient: the surrogate term pulls the chosen keys


def test_a_fresh_lora_leaves_the_llm_as_loaded_and_gets_a_gradient(llm):
    task = make_task(llm)
    params = task.init()
    data = triplets(8)
    grads = jax.jit(jax.grad(lambda p: task.loss(p, data)[0]))(params)
    assert float(jnp.abs(grads["lora"]["q_proj"]["b"]).sum()) > 0  # B starts at zero but moves first
    with_lora = task.embed_queries(params, data["reference"], data["tokens"], data["mask"])[0]
    no_lora = make_task(llm, dataclasses.replace(SMALL, use_lora=False))
    bare = {k: v for k, v in params.items() if k != "lora"}
    np.testing.assert_allclose(with_lora, no_lora.embed_queries(bare, data["reference"], data["tokens"],
                                                                data["mask"])[0], atol=1e-5)


@pytest.mark.parametrize("change", [dict(task_prompt=False), dict(instance_prompt=False), dict(pooling="last"),
                                    dict(pooling="mean")])
def test_each_switch_changes_the_embedding(llm, change):
    data = triplets(4)
    base = make_task(llm)
    params = base.init()
    params["pooling"] = {"score": jnp.full((32,), 0.5)}  # a trained-looking score, so weighted != mean
    other = make_task(llm, dataclasses.replace(SMALL, **change))
    other_params = {k: v for k, v in params.items() if k in other.init()}
    a = base.embed_queries(params, data["reference"], data["tokens"], data["mask"])[0]
    b = other.embed_queries(other_params, data["reference"], data["tokens"], data["mask"])[0]
    assert float(jnp.abs(a - b).max()) > 1e-3


def test_llm_layers_keeps_a_prefix_of_the_layers(llm):
    task = make_task(llm, dataclasses.replace(SMALL, llm_layers=1))
    params = task.init()
    assert task.bb.lm.num_hidden_layers == 1
    assert params["llm"]["layers"]["q_proj"]["kernel"].shape[0] == 1
    assert params["lora"]["q_proj"]["a"].shape[0] == 1


def test_bad_config_names_the_field():
    with pytest.raises(InvalidConfig, match="pooling"):
        MLLMConfig(pooling="max")
    with pytest.raises(InvalidConfig, match="top_k"):
        PromptPoolConfig(size=3, top_k=5)


def test_a_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(llm):
    task, data = make_task(llm), ArraySource(triplets(16))
    config = TrainerConfig(steps=4, batch_size=8, learning_rate=3e-3, warmup_steps=1, decay_steps=100)
    # uninterrupted: one call, state kept on the device between its two dispatches of 2 steps; the dispatch
    # length is the resumed halves' so all three calls share one compiled program (tests/training/test_trainer.py
    # checks that the dispatch length does not change the result)
    whole = train(task, data, config, steps_per_call=2)
    first = train(task, data, config, stop=2)
    resumed = train(make_task(llm), data, config, start=first)  # a fresh task object, as a new process builds
    assert set(whole.params) == set(resumed.params)
    for name, value in whole.params.items():
        np.testing.assert_allclose(resumed.params[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_hard_negatives_enter_the_loss_only_when_asked(llm):
    data = triplets(8)
    batch = {**data, "negative": data["target"][::-1].copy()}  # each query's "near miss": another target
    plain = make_task(llm)
    hard = LVLMTask(LVLMConfig(model=SMALL, hard_negatives=True), plain.bb, (3, 4, 5), (6, 7))
    params = plain.init()
    assert float(plain.loss(params, batch)[0]) == pytest.approx(float(plain.loss(params, data)[0]))
    assert float(hard.loss(params, batch)[0]) > float(plain.loss(params, batch)[0])  # more candidates: harder
