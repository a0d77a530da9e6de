"""CIR-LVLM's model on tiny random backbones: it trains (the loss falls) and its switches change what it
computes. The few-step loop here is plain optax on the task's loss (the generic trainer is tested on its own)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from mllm_fixtures import tiny_lm, triplets

from cirkit.config_checks import InvalidConfig
from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_lvlm.task import LVLMConfig, LVLMTask
from cirkit.mllm.model import MLLMConfig, PromptPoolConfig, backbone

SMALL = MLLMConfig(n_queries=4, pool=PromptPoolConfig(size=6, length=2, top_k=2), lora=LoraConfig(rank=2))


def make_task(model: MLLMConfig = SMALL, layers: int = 2) -> LVLMTask:
    bb = backbone(tiny_lm(layers=layers), model, vision_dim=16)
    return LVLMTask(LVLMConfig(model=model), bb, [3, 4, 5], [6, 7])


def train(task: LVLMTask, steps: int, data: dict, lr: float = 3e-3):
    params = task.init()
    opt = optax.adam(lr)
    state = opt.init(params)

    @jax.jit
    def step(p, s, batch):
        (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(p, batch)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state, data)
        losses.append(float(loss))
    return params, losses


def test_a_tiny_backbone_learns_the_triplets():
    data = triplets(16)
    _, losses = train(make_task(), 30, data)
    assert losses[-1] < 0.5 * losses[0], losses


def test_only_the_adapters_move_and_a_fresh_lora_leaves_the_llm_as_loaded():
    task = make_task()
    params = task.init()
    data = triplets(8)
    grads = jax.grad(lambda p: task.loss(p, data)[0])(params)
    assert set(grads) == {"connector", "pool", "lora", "pooling", "log_scale"}
    # LoRA's B starts at zero, so its A gets no gradient yet, but B does: the LLM is being adapted
    assert float(jnp.abs(grads["lora"]["q_proj"]["b"]).sum()) > 0
    merged_out = task.embed_queries(params, data["reference"], data["tokens"], data["mask"])[0]
    no_lora = LVLMTask(LVLMConfig(model=dataclasses.replace(SMALL, use_lora=False)), task.bb, [3, 4, 5], [6, 7])
    bare = {k: v for k, v in params.items() if k != "lora"}
    np.testing.assert_allclose(merged_out, no_lora.embed_queries(bare, data["reference"], data["tokens"],
                                                                 data["mask"])[0], atol=1e-5)


@pytest.mark.parametrize("change", [dict(task_prompt=False), dict(instance_prompt=False), dict(pooling="last"),
                                    dict(pooling="mean")])
def test_each_switch_changes_the_embedding(change):
    data = triplets(4)
    base = make_task()
    params = base.init()
    params["pooling"] = {"score": jnp.full((32,), 0.5)}  # a trained-looking score, so weighted != mean
    other = make_task(dataclasses.replace(SMALL, **change))
    other_params = {k: v for k, v in params.items() if k in other.init()}
    a = base.embed_queries(params, data["reference"], data["tokens"], data["mask"])[0]
    b = other.embed_queries(other_params, data["reference"], data["tokens"], data["mask"])[0]
    assert float(jnp.abs(a - b).max()) > 1e-3


def test_llm_layers_keeps_a_prefix_of_the_layers():
    task = make_task(dataclasses.replace(SMALL, llm_layers=1), layers=3)
    assert task.bb.config.num_hidden_layers == 1
    assert task.bb.params["layers"]["q_proj"]["kernel"].shape[0] == 1
    assert task.init()["lora"]["q_proj"]["a"].shape[0] == 1


def test_the_pool_picks_prompts_by_the_image_and_its_keys_learn():
    task = make_task()
    data = triplets(16)
    params, _ = train(task, 10, data)
    moved = np.abs(np.asarray(params["pool"]["keys"]) - np.asarray(task.init()["pool"]["keys"])).sum(axis=1)
    assert (moved > 0).sum() >= 2  # the chosen keys were pulled towards their queries


def test_bad_config_names_the_field():
    with pytest.raises(InvalidConfig, match="pooling"):
        MLLMConfig(pooling="max")
    with pytest.raises(InvalidConfig, match="top_k"):
        PromptPoolConfig(size=3, top_k=5)
