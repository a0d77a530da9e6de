"""The language model inside a Qwen2-VL / Qwen2.5-VL or LLaVA-NeXT (Mistral, Qwen2) folder, read by cirkit's causal
LM: text-only logits against transformers, both tensor layouts, old flat configs, and named refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference checkpoints are written by transformers + torch (the test extra)")

import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from backbone_fixtures import VOCAB, make_llava_next, make_qwen2_vl  # noqa: E402

from cirkit.encoders.clip_config import CheckpointError  # noqa: E402
from cirkit.lm.config import read_lm_config  # noqa: E402
from cirkit.lm.model import embed_tokens, forward, positions_from_mask  # noqa: E402
from cirkit.lm.weights import load_lm  # noqa: E402
from cirkit.mllm.vision import open_vision  # noqa: E402

CASES = {"qwen2_vl-saved": ("qwen2_vl", "saved"), "qwen2_vl-native": ("qwen2_vl", "native"),
         "qwen2_5_vl-saved": ("qwen2_5_vl", "saved"), "llava_next-mistral": ("mistral", "saved"),
         "llava_next-qwen2": ("qwen2", "native")}


@pytest.fixture(scope="module", params=sorted(CASES))
def folder(request, tmp_path_factory):
    kind, layout = CASES[request.param]
    path = tmp_path_factory.mktemp(request.param)
    if kind.startswith("qwen2_") and kind != "qwen2":
        return kind, path, make_qwen2_vl(path, layout, kind)
    return "llava_next", path, make_llava_next(path, layout, text_type=kind)


def test_text_logits_match_transformers(folder):
    kind, path, model = folder
    lm = load_lm(str(path))
    assert lm.config.model_type == ("mistral" if "mistral" in path.name else "qwen2")
    ids = np.random.default_rng(0).integers(3, VOCAB - 3, size=(2, 12))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    positions = np.where(mask > 0, np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    position_ids=torch.tensor(positions)).logits.numpy()
    out = forward(lm.params, lm.config, embed_tokens(lm.params, jnp.asarray(ids)),
                  positions_from_mask(jnp.asarray(mask)), jnp.asarray(mask))
    real = mask > 0
    assert np.abs(ref[real]).max() > 0.1
    np.testing.assert_allclose(np.asarray(out.logits)[real], ref[real], atol=1e-4, rtol=0)


def test_an_old_flat_qwen2_vl_config_reads_the_same(tmp_path):
    """Qwen2-VL configs before text_config existed: one level, ``rope_scaling`` of type ``mrope``."""
    make_qwen2_vl(tmp_path)
    nested = read_lm_config(str(tmp_path))
    raw = json.loads((tmp_path / "config.json").read_text())
    text = raw.pop("text_config")
    rope = text.pop("rope_parameters")
    flat = {**raw, **{k: v for k, v in text.items() if k != "model_type"}, "rope_theta": rope["rope_theta"],
            "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]}}
    (tmp_path / "config.json").write_text(json.dumps(flat))
    assert read_lm_config(str(tmp_path)) == nested
    assert nested.rope.kind == "default" and nested.rope.theta == 10000.0 and nested.qkv_bias


def test_qwen2_5_vl_vision_tower_is_refused_naming_what_is_missing(tmp_path):
    make_qwen2_vl(tmp_path, kind="qwen2_5_vl")
    with pytest.raises(CheckpointError, match=f"{tmp_path}: a qwen2_5_vl folder's vision transformer .*not implemented"):
        open_vision(str(tmp_path))


def test_a_sliding_window_mistral_is_refused(tmp_path):
    make_llava_next(tmp_path, text_type="mistral")
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["text_config"]["sliding_window"] = 4096
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="'sliding_window' is 4096"):
        read_lm_config(str(tmp_path))
