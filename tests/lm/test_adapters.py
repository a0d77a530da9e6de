"""LoRA and soft prompts over a frozen base (random parameters; no reference implementation needed)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cirkit.lm.adapters import AdapterConfig, LoraConfig, adapted_forward, init_adapter, merge_lora
from cirkit.lm.config import LMConfig, RopeConfig
from cirkit.lm.generate import greedy_generate
from cirkit.lm.weights import random_params

CONFIG = LMConfig(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                  rope=RopeConfig(theta=10000.0))
ADAPTER = AdapterConfig(lora=LoraConfig(rank=4, alpha=8.0, targets=("q_proj", "v_proj", "down_proj")))


@pytest.fixture(scope="module")
def base():
    return random_params(CONFIG, seed=0, std=0.2)


def _batch():
    tokens = np.random.default_rng(0).integers(0, 64, size=(2, 12)).astype(np.int32)
    mask = np.ones_like(tokens)
    mask[0, :3] = 0
    return jnp.asarray(tokens), jnp.asarray(mask)


def _next_token_loss(trainable, params, adapter):
    tokens, mask = _batch()
    out, full_mask = adapted_forward(params, CONFIG, adapter, trainable, tokens, mask)
    logits = out.logits[:, -tokens.shape[1]:-1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    return -(picked * mask[:, 1:]).sum() / mask[:, 1:].sum()


def _with_random_b(trainable, seed=1):
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 8))
    return {"lora": {n: {"a": f["a"], "b": 0.3 * jax.random.normal(next(keys), f["b"].shape)}
                     for n, f in trainable["lora"].items()}}


def test_fresh_lora_is_exactly_the_base_model(base):
    tokens, mask = _batch()
    trainable = init_adapter(CONFIG, ADAPTER)
    plain, _ = adapted_forward(base, CONFIG, AdapterConfig(lora=None), {}, tokens, mask)
    fresh, _ = adapted_forward(base, CONFIG, ADAPTER, trainable, tokens, mask)
    np.testing.assert_array_equal(np.asarray(fresh.logits), np.asarray(plain.logits))
    # with a non-zero B the adapter changes the output, exactly as folding scale * A B into the kernels does
    moved = _with_random_b(trainable)
    adapted, _ = adapted_forward(base, CONFIG, ADAPTER, moved, tokens, mask)
    merged, _ = adapted_forward(merge_lora(base, ADAPTER, moved), CONFIG, AdapterConfig(lora=None), {}, tokens, mask)
    assert np.abs(np.asarray(adapted.logits) - np.asarray(plain.logits)).max() > 1e-2
    np.testing.assert_allclose(np.asarray(adapted.logits), np.asarray(merged.logits), atol=1e-5, rtol=0)


def test_gradients_reach_only_the_adapter(base):
    adapter = dataclasses.replace(ADAPTER, soft_prompt_length=3)
    trainable = init_adapter(CONFIG, adapter, base)
    grads = jax.grad(lambda both: _next_token_loss(both["adapter"], both["base"], adapter))(
        {"adapter": trainable, "base": base})
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(grads["base"]))
    lora = grads["adapter"]["lora"]
    for name in ADAPTER.lora.targets:  # with B = 0, dL/dA = 0 and dL/dB != 0 (the standard LoRA start)
        assert np.all(np.asarray(lora[name]["a"]) == 0) and np.abs(np.asarray(lora[name]["b"])).max() > 0
    assert np.abs(np.asarray(grads["adapter"]["soft_prompt"])).max() > 0
    # once B has moved, A receives gradient too
    moved = {**trainable, **_with_random_b(trainable)}
    later = jax.grad(_next_token_loss)(moved, base, adapter)
    assert np.abs(np.asarray(later["lora"]["q_proj"]["a"])).max() > 0


def test_soft_prompt_equal_to_token_embeddings_acts_like_those_tokens(base):
    prefix = [5, 17, 42]
    prompts = [[3, 9, 11, 20], [7, 8, 30, 31, 33, 40, 41]]
    soft = base["embed"][jnp.asarray(prefix)]
    with_soft = greedy_generate(base, CONFIG, prompts, 6, soft_prompt=soft, eos_ids=(), pad_id=0,
                                return_logits=True)
    with_tokens = greedy_generate(base, CONFIG, [prefix + p for p in prompts], 6, eos_ids=(), pad_id=0,
                                  return_logits=True)
    assert with_soft[0] == with_tokens[0]
    np.testing.assert_allclose(with_soft[1], with_tokens[1], atol=1e-5, rtol=0)


def test_generation_with_lora_equals_generation_with_merged_weights(base):
    moved = _with_random_b(init_adapter(CONFIG, ADAPTER))
    prompts = [[3, 9, 11, 20], [7, 8, 30]]
    ours = greedy_generate(base, CONFIG, prompts, 6, lora=moved["lora"], lora_scale=ADAPTER.lora.scale,
                           eos_ids=(), pad_id=0, return_logits=True)
    merged = greedy_generate(merge_lora(base, ADAPTER, moved), CONFIG, prompts, 6, eos_ids=(), pad_id=0,
                             return_logits=True)
    plain = greedy_generate(base, CONFIG, prompts, 6, eos_ids=(), pad_id=0, return_logits=True)
    assert ours[0] == merged[0]
    np.testing.assert_allclose(ours[1], merged[1], atol=1e-4, rtol=0)
    assert np.abs(ours[1] - plain[1]).max() > 1e-2


@pytest.mark.parametrize("kwargs, message", [
    (dict(rank=0), "lora.rank"),
    (dict(targets=("q_proj", "attn")), "lora.targets"),
])
def test_bad_lora_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraConfig(**kwargs)
