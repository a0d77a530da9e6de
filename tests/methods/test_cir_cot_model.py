"""CIR-CoT's model on a tiny random backbone: the next-token and contrastive losses both fall, and after a
short training the greedy chain of thought is the one it was taught (then the embedding reads it)."""

from __future__ import annotations

import numpy as np
import pytest
from mllm_fixtures import cot_triplets, tiny_backbone, write_tiny_llm

from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_cot.task import CoTConfig, CoTTask
from cirkit.mllm.model import MLLMConfig
from cirkit.training import ArraySource, TrainerConfig, full_params, train

MODEL = MLLMConfig(n_queries=4, instance_prompt=False, pooling="last", lora=LoraConfig(rank=4))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("llm"))


def make_task(llm, **kw) -> CoTTask:
    return CoTTask(CoTConfig(model=MODEL, max_cot_tokens=6, **kw), tiny_backbone(llm, MODEL), (3, 4, 5), (6, 7))


def train_task(task, data, steps, lr=1e-2):
    fields = {k: data[k] for k in ("reference", "target", "tokens", "mask", "labels")}
    config = TrainerConfig(steps=steps, batch_size=len(data["tokens"]), learning_rate=lr, warmup_steps=1,
                           decay_steps=1000)
    checkpoint = train(task, ArraySource(fields), config)
    return full_params(task, checkpoint, config.seed), checkpoint


def test_both_losses_fall_and_the_taught_reasoning_is_generated(llm):
    data = cot_triplets(12)
    task = make_task(llm)
    batch = {k: data[k] for k in ("reference", "target", "tokens", "mask", "labels")}
    before = task.loss(task.init(), batch)[1]
    params, checkpoint = train_task(task, data, 60)
    after = task.loss(params, batch)[1]
    assert float(after["ce"]) < 0.3 * float(before["ce"]), (before, after)
    assert float(after["contrastive"]) < 0.8 * float(before["contrastive"]), (before, after)
    generated = task.generate(params, data["reference"], [list(map(int, p)) for p in data["prompt"]])
    taught = [list(map(int, c)) for c in data["cot"]]
    assert sum(g == t for g, t in zip(generated, taught)) >= 10, (generated, taught)


def test_the_embedding_reads_the_chain_of_thought(llm):
    data = cot_triplets(4)
    task = make_task(llm)
    params = task.init()
    with_cot = task.embed_queries(params, data["reference"], data["tokens"], data["mask"])
    without = task.embed_queries(params, data["reference"], data["prompt"], np.ones_like(data["prompt"]))
    assert float(np.abs(np.asarray(with_cot) - np.asarray(without)).max()) > 1e-3


def test_ce_weight_zero_is_pure_contrastive(llm):
    data = cot_triplets(4)
    batch = {k: data[k] for k in ("reference", "target", "tokens", "mask", "labels")}
    task = make_task(llm, ce_weight=0.0)
    params = task.init()
    loss, aux = task.loss(params, batch)
    np.testing.assert_allclose(float(loss), float(aux["contrastive"]), rtol=1e-6)
