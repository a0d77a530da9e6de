"""A LLaVA-1.6 (LLaVA-NeXT) folder as a CIR-LVLM / CIR-CoT backbone: its visual pathway and its language model
against transformers on tiny random checkpoints, in each tensor layout found in the wild."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference checkpoints are written by transformers + torch (the test extra)")

import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from backbone_fixtures import VOCAB, make_llava_next  # noqa: E402
from PIL import Image  # noqa: E402

from cirkit.encoders.clip_config import CheckpointError  # noqa: E402
from cirkit.lm.config import read_lm_config  # noqa: E402
from cirkit.lm.model import embed_tokens, forward, positions_from_mask  # noqa: E402
from cirkit.lm.weights import load_lm  # noqa: E402
from cirkit.mllm.llava_next import LlavaNextVision  # noqa: E402
from cirkit.mllm.model import MLLMConfig, backbone, frozen_llm  # noqa: E402
from cirkit.mllm.vision import open_vision  # noqa: E402


@pytest.fixture(scope="module", params=["saved", "llava-hf", "native"])
def llava(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"llava-{request.param}")
    return folder, make_llava_next(folder, request.param)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One folder in the layout transformers writes, for the checks that do not depend on the layout."""
    folder = tmp_path_factory.mktemp("llava-one")
    make_llava_next(folder)
    return folder


def _reference_features(model, pixels, layer, strategy):
    """transformers' get_image_features for a 28x28 image (base view + one tile); the base view's tokens come first."""
    with torch.no_grad():
        out = model.model.get_image_features(torch.tensor(pixels), torch.tensor([[28, 28]]), vision_feature_layer=layer,
                                             vision_feature_select_strategy=strategy)
    return out.pooler_output[0].numpy()


def test_visual_pathway_matches_get_image_features(llava):
    """Tower at vision_feature_layer (-2), class token dropped, pretrained projector: the base view's visual tokens."""
    folder, model = llava
    pixels = np.random.default_rng(0).standard_normal((1, 2, 3, 28, 28)).astype(np.float32)
    tower = open_vision(str(folder))
    assert isinstance(tower, LlavaNextVision) and (tower.tokens, tower.dim) == (4, 48)
    ours = tower.states_of_pixels(pixels[0, :1])
    ref = _reference_features(model, pixels, -2, "default")
    assert ours.shape == (1, 4, 48) and np.abs(ref[:4]).max() > 0.1
    np.testing.assert_allclose(ours[0], ref[:4], atol=1e-5, rtol=0)


def test_language_model_logits_match_transformers(llava):
    """The LLM read out of the folder gives transformers' text-only logits (a left-padded row included)."""
    folder, model = llava
    lm = load_lm(str(folder))
    assert lm.config.model_type == "llama" and not lm.config.tie_word_embeddings
    ids = np.random.default_rng(1).integers(3, VOCAB - 1, size=(2, 12))
    mask = np.ones_like(ids)
    mask[0, :4] = 0
    positions = np.where(mask > 0, np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    position_ids=torch.tensor(positions)).logits.numpy()
    out = forward(lm.params, lm.config, embed_tokens(lm.params, jnp.asarray(ids)), positions_from_mask(jnp.asarray(mask)),
                  jnp.asarray(mask))
    real = mask > 0
    np.testing.assert_allclose(np.asarray(out.logits)[real], ref[real], atol=1e-4, rtol=0)


def test_the_mllm_backbone_reads_a_prefix_of_the_folders_llm(llava):
    folder, _ = llava
    bb = backbone(str(folder), "digest", MLLMConfig(llm_layers=1), 48)
    params, full = frozen_llm(bb), load_lm(str(folder)).params
    assert bb.lm.num_hidden_layers == 1 and params["layers"]["q_proj"]["kernel"].shape[0] == 1
    np.testing.assert_array_equal(params["layers"]["q_proj"]["kernel"][0], full["layers"]["q_proj"]["kernel"][0])
    np.testing.assert_array_equal(params["lm_head"], full["lm_head"])


def test_full_strategy_last_layer_and_the_raw_tower(tmp_path):
    """``full`` keeps the class token; ``project=False`` gives the tower's hidden state at the feature layer."""
    model = make_llava_next(tmp_path, strategy="full", feature_layer=-1)
    pixels = np.random.default_rng(2).standard_normal((1, 1, 3, 28, 28)).astype(np.float32)
    with torch.no_grad():  # (transformers' anyres packing cannot take ``full``: compare with its tower + projector)
        hidden = model.model.vision_tower(torch.tensor(pixels[0, :1]), output_hidden_states=True).hidden_states[-1]
        projected = model.model.multi_modal_projector(hidden).numpy()
    ours = LlavaNextVision(str(tmp_path))
    assert ours.tokens == 5
    np.testing.assert_allclose(ours.states_of_pixels(pixels[0, :1]), projected, atol=1e-5, rtol=0)
    raw = LlavaNextVision(str(tmp_path), project=False)
    assert raw.dim == 32
    np.testing.assert_allclose(raw.states_of_pixels(pixels[0, :1]), hidden.numpy(), atol=1e-5, rtol=0)


def test_image_files_go_through_the_processors_base_view(saved, tmp_path):
    """The base view equals transformers' LLaVA-NeXT processor's first crop (the whole image squashed to 28x28)."""
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    folder = saved
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (45, 70, 3), dtype=np.uint8))
    image.save(tmp_path / "a.png")
    tower = LlavaNextVision(str(folder))
    ref = LlavaNextImageProcessorPil.from_pretrained(folder)(image, return_tensors="np")["pixel_values"][0, 0]
    np.testing.assert_allclose(tower.base_view(image), ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tower.states_of_files([str(tmp_path / "a.png")]), tower.states_of_pixels(ref[None]),
                               atol=1e-6, rtol=0)


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _edit_config(folder, **changes):
    raw = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        *path, leaf = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[leaf] = value
    (folder / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize("change, message", [
    ({"vision_feature_layer": [-2, -5]}, "'vision_feature_layer' is \\[-2, -5\\]; cirkit reads one layer"),
    ({"vision_feature_layer": -7}, "'vision_feature_layer' -7 is outside the tower's 3 layers"),
    ({"vision_feature_select_strategy": "cls"}, "'vision_feature_select_strategy' is 'cls'"),
    ({"vision_config.model_type": "siglip_vision_model"}, "'vision_config.model_type' is 'siglip_vision_model'"),
])
def test_unsupported_options_fail_naming_the_file_and_field(saved, tmp_path, change, message):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, **change)
    with pytest.raises(CheckpointError, match=str(folder / "config.json") + ".*" + message):
        LlavaNextVision(str(folder))


def test_a_missing_projector_or_tower_tensor_is_named(saved, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = _copy(saved, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    dropped = {k: v for k, v in tensors.items() if "multi_modal_projector.linear_2.weight" not in k}
    save_file(dropped, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"{folder}: tensor multi_modal_projector.linear_2.weight is absent"):
        LlavaNextVision(str(folder))
    save_file({k: v for k, v in tensors.items() if "layers.1.mlp.fc1.weight" not in k or "vision" not in k},
              str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tower tensor.*vision_model.encoder.layers.1.mlp.fc1.weight"):
        LlavaNextVision(str(folder))


def test_an_unknown_vision_language_folder_is_refused_by_name(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, model_type="paligemma")
    with pytest.raises(CheckpointError, match="'model_type' is 'paligemma', a vision-language folder cirkit does not"):
        read_lm_config(str(folder))
