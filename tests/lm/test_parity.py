"""cirkit's JAX causal LM against transformers + torch on small random checkpoints of each family and layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference checkpoints are written by transformers + torch (the test extra)")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from lm_fixtures import FAMILY_CONFIGS, make_lm_checkpoint  # noqa: E402

from cirkit.lm.generate import greedy_generate, pad_left, positions_from_mask  # noqa: E402
from cirkit.lm.model import embed_tokens, forward  # noqa: E402
from cirkit.lm.weights import load_lm  # noqa: E402

VOCAB = 96


@pytest.fixture(scope="module", params=sorted(FAMILY_CONFIGS))
def checkpoint(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    make_lm_checkpoint(folder, request.param, vocab=VOCAB)
    return request.param, folder


def _torch_model(folder):
    """A fresh transformers model from the folder (its dynamic rope keeps state between calls, so never reuse it)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _batch(length=24):
    """Two rows, the first left-padded by 5: the padding must change nothing."""
    ids = np.random.default_rng(0).integers(3, VOCAB, size=(2, length))
    mask = np.ones_like(ids)
    mask[0, :5] = 0
    return ids, mask


def _reference(model, ids, mask, **kw):
    positions = np.where(mask > 0, np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        return model(torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions), **kw)


def test_forward_and_greedy_generation_match_transformers(checkpoint):
    """Logits and every hidden state on a left-padded batch, then cached greedy decoding, token for token."""
    name, folder = checkpoint
    lm = load_lm(str(folder))
    ids, mask = _batch()
    ref = _reference(_torch_model(folder), ids, mask, output_hidden_states=True)
    out = forward(lm.params, lm.config, embed_tokens(lm.params, jnp.asarray(ids)),
                  positions_from_mask(jnp.asarray(mask)), jnp.asarray(mask), all_hidden=True)
    real = mask > 0
    np.testing.assert_allclose(np.asarray(out.logits)[real], ref.logits.numpy()[real], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out.hidden)[real], ref.hidden_states[-1].numpy()[real], atol=1e-4, rtol=0)
    for layer in range(len(ref.hidden_states) - 1):  # embeddings, then each layer before the final norm
        np.testing.assert_allclose(np.asarray(out.layers[layer])[real], ref.hidden_states[layer].numpy()[real],
                                   atol=1e-4, rtol=0)

    rng = np.random.default_rng(1)
    # prompts of 5, 9 and 20 tokens; for the "dynamic" layout the longest runs past the 16-token trained context
    prompts = [rng.integers(3, VOCAB, size=n).tolist() for n in (5, 9, 20)]
    ours, logits = greedy_generate(lm.params, lm.config, prompts, 10, eos_ids=(), pad_id=0, return_logits=True)
    tokens, mask = pad_left(prompts, 0, bucket=1)
    with torch.no_grad():
        ref = _torch_model(folder).generate(
            torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask), max_new_tokens=10,
            do_sample=False, eos_token_id=None, pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    ref_tokens = ref.sequences[:, tokens.shape[1]:].tolist()
    assert len({t for row in ref_tokens for t in row}) >= 3, "the reference generations are too uniform to test"
    assert ours == ref_tokens
    # the logits of every cached decoding step (not only their argmax) match
    ref_logits = torch.stack(ref.logits, dim=1).numpy()
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4 * max(1.0, np.abs(ref_logits).max()), rtol=0)


def test_end_token_stops_a_sequence_and_pads_the_rest(tmp_path):
    make_lm_checkpoint(tmp_path, "qwen2", vocab=VOCAB)
    lm = load_lm(str(tmp_path))
    prompts = [np.random.default_rng(1).integers(3, VOCAB, size=n).tolist() for n in (5, 9)]
    free = greedy_generate(lm.params, lm.config, prompts, 8, eos_ids=(), pad_id=0)
    stop = free[0][-1]  # a token the first row produces: declared an end token, it ends that row there
    ours, logits = greedy_generate(lm.params, lm.config, prompts, 8, eos_ids=(stop,), pad_id=0, return_logits=True)
    expected = [row[:row.index(stop) + 1] if stop in row else row for row in free]
    assert ours == expected
    ended = len(ours[0])  # the loop itself stopped deciding for that row: no logits recorded after its end
    assert ended < 8 and np.all(logits[0, ended:] == 0) and np.any(logits[0, ended - 1] != 0)


def test_bfloat16_logits_stay_close_to_float32(tmp_path):
    make_lm_checkpoint(tmp_path, "llama3", vocab=VOCAB)
    ids, mask = _batch()
    logits = {}
    for dtype in ("float32", "bfloat16"):
        lm = load_lm(str(tmp_path), dtype=dtype)
        out = forward(lm.params, lm.config, embed_tokens(lm.params, jnp.asarray(ids), jnp.dtype(dtype)),
                      positions_from_mask(jnp.asarray(mask)), jnp.asarray(mask))
        assert out.logits.dtype == jnp.dtype(dtype)
        logits[dtype] = np.asarray(out.logits, np.float32)[mask > 0]
    scale = np.abs(logits["float32"]).max()
    assert np.abs(logits["bfloat16"] - logits["float32"]).max() < 0.05 * scale
    assert (logits["bfloat16"].argmax(-1) == logits["float32"].argmax(-1)).mean() > 0.9


def test_sharded_checkpoint_loads_like_a_single_file(tmp_path):
    make_lm_checkpoint(tmp_path / "one", "qwen2", vocab=VOCAB)
    make_lm_checkpoint(tmp_path / "sharded", "qwen2", vocab=VOCAB, shard_size="40KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    one, sharded = load_lm(str(tmp_path / "one")), load_lm(str(tmp_path / "sharded"))
    leaves_one, tree_one = jax.tree_util.tree_flatten(one.params)
    leaves_sharded, tree_sharded = jax.tree_util.tree_flatten(sharded.params)
    assert tree_one == tree_sharded
    for a, b in zip(leaves_one, leaves_sharded, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
