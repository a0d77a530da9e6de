"""CIR-CoT's model on a tiny random backbone: the next-token and contrastive losses both fall, and after a
short training the greedy chain of thought is the one it was taught (then the embedding reads it)."""

from __future__ import annotations

import jax
import numpy as np
import optax
from mllm_fixtures import cot_triplets, tiny_lm

from cirkit.lm.adapters import LoraConfig
from cirkit.methods.cir_cot.task import CoTConfig, CoTTask
from cirkit.mllm.model import MLLMConfig, backbone

MODEL = MLLMConfig(n_queries=4, instance_prompt=False, pooling="last", lora=LoraConfig(rank=4))


def make_task(**kw) -> CoTTask:
    bb = backbone(tiny_lm(), MODEL, vision_dim=16)
    return CoTTask(CoTConfig(model=MODEL, max_cot_tokens=6, **kw), bb, [3, 4, 5], [6, 7])


def train(task, data, steps, lr=1e-2):
    params, opt = task.init(), optax.adam(lr)
    state = opt.init(params)
    batch = {k: data[k] for k in ("reference", "target", "tokens", "mask", "labels")}

    @jax.jit
    def step(p, s):
        (loss, aux), grads = jax.value_and_grad(task.loss, has_aux=True)(p, batch)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, aux

    history = []
    for _ in range(steps):
        params, state, aux = step(params, state)
        history.append({k: float(v) for k, v in aux.items()})
    return params, history


def test_both_losses_fall_and_the_taught_reasoning_is_generated():
    data = cot_triplets(12)
    task = make_task()
    params, history = train(task, data, 60)
    assert history[-1]["ce"] < 0.3 * history[0]["ce"], history[::10]
    assert history[-1]["contrastive"] < 0.8 * history[0]["contrastive"], history[::10]
    generated = task.generate(params, data["reference"], [list(map(int, p)) for p in data["prompt"]])
    taught = [list(map(int, c)) for c in data["cot"]]
    assert sum(g == t for g, t in zip(generated, taught)) >= 10, (generated, taught)


def test_the_embedding_reads_the_chain_of_thought():
    data = cot_triplets(4)
    task = make_task()
    params = task.init()
    with_cot = task.embed_queries(params, data["reference"], data["tokens"], data["mask"])
    without = task.embed_queries(params, data["reference"], data["prompt"], np.ones_like(data["prompt"]))
    assert float(np.abs(np.asarray(with_cot) - np.asarray(without)).max()) > 1e-3


def test_ce_weight_zero_is_pure_contrastive():
    data = cot_triplets(4)
    batch = {k: data[k] for k in ("reference", "target", "tokens", "mask", "labels")}
    task = make_task(ce_weight=0.0)
    params = task.init()
    loss, aux = task.loss(params, batch)
    np.testing.assert_allclose(float(loss), float(aux["contrastive"]), rtol=1e-6)
