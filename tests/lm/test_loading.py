"""Reading causal LM folders: both config layouts, and one clear error per kind of bad checkpoint."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from lm_fixtures import make_lm_checkpoint
from safetensors.numpy import save_file

from cirkit.lm.config import CheckpointError, RopeConfig, read_lm_config
from cirkit.lm.weights import expected_shapes, load_lm

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 32, "hidden_size": 16,
          "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "eos_token_id": 2,
          "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}


def _write(folder, config=CONFIG, drop=(), reshape=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    shapes = expected_shapes(read_lm_config(str(folder)))
    rng = np.random.default_rng(0)
    tensors = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items() if n not in drop}
    if reshape:
        tensors[reshape] = np.zeros((3, 3), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_old_and_new_rope_layouts_read_alike(tmp_path):
    llama3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    new = dict(CONFIG, rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, **llama3})
    old = {k: v for k, v in CONFIG.items() if k != "rope_parameters"}
    old.update(rope_theta=500000.0, rope_scaling={"type": "llama3", **llama3})
    for name, raw in (("new", new), ("old", old)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(raw))
    expected = RopeConfig(theta=500000.0, kind="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=32)
    assert read_lm_config(str(tmp_path / "new")).rope == expected
    assert read_lm_config(str(tmp_path / "old")).rope == expected


def test_generation_config_decides_end_and_pad_tokens(tmp_path):
    folder = _write(tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 7], "pad_token_id": 5}))
    config = read_lm_config(str(folder))
    assert config.eos_token_ids == (2, 7) and config.pad_token_id == 5


def test_a_written_checkpoint_loads_tensor_for_tensor(tmp_path):
    folder = _write(tmp_path)
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    params = load_lm(str(folder)).params
    np.testing.assert_array_equal(np.asarray(params["layers"]["k_proj"]["kernel"][1]),
                                  tensors["model.layers.1.self_attn.k_proj.weight"].T)
    np.testing.assert_array_equal(np.asarray(params["lm_head"]), tensors["lm_head.weight"].T)


@pytest.mark.parametrize("change, message", [
    (dict(model_type="gpt2"), r"config.json: 'model_type' is 'gpt2'"),
    (dict(hidden_act="gelu"), r"config.json: 'hidden_act' is 'gelu'"),
    (dict(num_key_value_heads=3), r"'num_attention_heads' \(4\) is not a multiple of 'num_key_value_heads' \(3\)"),
    (dict(rope_parameters={"rope_type": "yarn", "factor": 2.0}), r"'rope_parameters.rope_type' is 'yarn'"),
    (dict(rope_parameters={"rope_type": "llama3", "factor": 2.0}), r"rope_type 'llama3' needs low_freq_factor"),
    (dict(vocab_size="32"), r"lacks integer field\(s\) vocab_size"),
])
def test_bad_config_fields_are_named(tmp_path, change, message):
    (tmp_path / "config.json").write_text(json.dumps(dict(CONFIG, **change)))
    with pytest.raises(CheckpointError, match=message):
        read_lm_config(str(tmp_path))


def test_missing_tensor_is_named(tmp_path):
    folder = _write(tmp_path, drop=("model.layers.1.mlp.up_proj.weight",))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) model.layers.1.mlp.up_proj.weight"):
        load_lm(str(folder))


def test_wrong_shape_is_named_with_both_shapes(tmp_path):
    folder = _write(tmp_path, reshape="model.norm.weight")
    with pytest.raises(CheckpointError, match=r"model.norm.weight has shape \(3, 3\), expected \(16,\)"):
        load_lm(str(folder))


def test_tensors_of_another_layout_are_reported(tmp_path):
    tied = dict(CONFIG, tie_word_embeddings=True)
    folder = _write(tmp_path, config=tied)  # a tied checkpoint read with biases it does not have
    (folder / "config.json").write_text(json.dumps(dict(tied, attention_bias=True)))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) model.layers.0.self_attn.q_proj.bias"):
        load_lm(str(folder))
    (folder / "config.json").write_text(json.dumps(dict(tied, num_hidden_layers=1)))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) model.layers.1.input_layernorm.weight"):
        load_lm(str(folder))


def test_pickle_only_folder_is_refused_with_the_way_out(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="reads safetensors only"):
        load_lm(str(tmp_path))


def test_loading_leaves_no_page_of_the_checkpoint_file_resident(tmp_path):
    """The memory-mapped file's pages are released tensor by tensor, so loading holds the parameters, not the
    parameters plus the whole file (which doubled the memory of loading SmolLM2's 540 MB of float32)."""
    import gc

    def resident_file_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024

    make_lm_checkpoint(tmp_path, "llama3", vocab=32768, hidden=256)  # untied: 2 x 32 MiB of embeddings
    jax.numpy.zeros(1).block_until_ready()  # the backend's own start-up is not the loader's
    gc.collect()
    size = (tmp_path / "model.safetensors").stat().st_size / 2**20
    before = resident_file_mib()
    lm = load_lm(str(tmp_path))
    assert sum(x.nbytes for x in jax.tree.leaves(lm.params)) / 2**20 > 0.95 * size
    kept = resident_file_mib() - before
    assert kept < 0.1 * size, f"{kept:.0f} MiB of the {size:.0f} MiB file still resident after loading"
