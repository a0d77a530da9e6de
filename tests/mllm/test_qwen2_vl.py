"""A Qwen2-VL folder's vision transformer (patch embedding, 2-D rotary blocks, patch merger) against transformers'
processor and get_image_features, on a tiny random checkpoint in both tensor layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference checkpoints are written by transformers + torch (the test extra)")

import torch  # noqa: E402
from backbone_fixtures import make_qwen2_vl  # noqa: E402
from PIL import Image  # noqa: E402

from cirkit.encoders.clip_config import CheckpointError  # noqa: E402
from cirkit.mllm.qwen2_vl import Qwen2VLVision, patchify  # noqa: E402
from cirkit.mllm.vision import open_vision  # noqa: E402

PREP = {"image_processor_type": "Qwen2VLImageProcessor", "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
        "min_pixels": 3136, "max_pixels": 1000000, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}


@pytest.fixture(scope="module", params=["saved", "native"])
def qwen(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"qwen2vl-{request.param}")
    model = make_qwen2_vl(folder, request.param)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREP))
    return folder, model


def test_visual_tokens_match_the_processor_and_get_image_features(qwen):
    """A 56x56 image: 4x4 patches in 2x2 merge blocks -> 4 visual tokens in the LLM's width, as transformers."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder, model = qwen
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8))
    ref_inputs = Qwen2VLImageProcessorPil.from_pretrained(folder)(image, return_tensors="np")
    tower = Qwen2VLVision(str(folder), side=56)
    pixels = tower.pixels(image)
    np.testing.assert_allclose(patchify(pixels, tower.settings), ref_inputs["pixel_values"], atol=1e-6, rtol=0)
    with torch.no_grad():
        ref = model.model.get_image_features(torch.tensor(ref_inputs["pixel_values"]),
                                             torch.tensor(ref_inputs["image_grid_thw"])).pooler_output
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    ours = tower.states_of_pixels(pixels[None])
    assert ours.shape == (1, 4, 48) == (1, tower.tokens, tower.dim) and np.abs(ref).max() > 0.1
    np.testing.assert_allclose(ours[0], ref, atol=1e-5, rtol=0)


def test_the_default_side_and_the_folder_dispatch(qwen, tmp_path):
    """open_vision picks the Qwen2-VL tower; 448x448 gives 256 tokens; image files go through the same pixels."""
    folder, _ = qwen
    tower = open_vision(str(folder))
    assert isinstance(tower, Qwen2VLVision) and tower.tokens == 256
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    small = Qwen2VLVision(str(folder), side=56)
    from_file = small.states_of_files([str(tmp_path / "a.png")])
    np.testing.assert_allclose(from_file, small.states_of_pixels(small.pixels(Image.open(tmp_path / "a.png"))[None]),
                               atol=1e-6, rtol=0)


def test_a_missing_merger_tensor_is_named(qwen, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "copy"
    shutil.copytree(qwen[0], folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if "merger.mlp.2.weight" not in k}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"{folder}: tensor visual.merger.mlp.2.weight is absent"):
        Qwen2VLVision(str(folder))
