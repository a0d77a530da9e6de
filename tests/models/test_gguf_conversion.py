"""The streamed GGUF -> safetensors conversion of SmolLM2: the same tensors as transformers' own GGUF reading,
every parameter of the transformers model present with its shape, and a peak memory near one copy of the
weights (the from_pretrained/save_pretrained route it replaced peaked at 3.0 GB for this 135M model)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import cli_env

pytest.importorskip("torch", reason="the reference is transformers + torch (the test extra)")
pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (the test extra)")

from cirkit.models.gguf_to_safetensors import transformers_name, unpermute_rows  # noqa: E402


def gguf_path():
    from cirkit.models.embedded import GGUFConfig, locate_gguf

    return locate_gguf.fn(GGUFConfig()).path


def test_unpermute_rows_restores_the_rotary_halves_per_head():
    # llama.cpp's layout of one head with head_dim 4: rows (0, 2, 1, 3) of the original; two heads here
    original = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    interleaved = original[[0, 2, 1, 3, 4, 6, 5, 7]]
    np.testing.assert_array_equal(unpermute_rows(interleaved, heads=2), original)


def test_unknown_tensor_names_are_refused_with_the_file():
    assert transformers_name("blk.3.ffn_down.weight", "m.gguf") == "model.layers.3.mlp.down_proj.weight"
    with pytest.raises(ValueError, match=r"m\.gguf: tensor 'blk\.0\.ssm_conv\.weight'"):
        transformers_name("blk.0.ssm_conv.weight", "m.gguf")


def test_converted_tensors_are_transformers_own_gguf_reading(smollm2_folder):
    import torch
    from gguf import GGUFReader, dequantize
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    config = AutoConfig.from_pretrained(smollm2_folder)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight")
    processor = LlamaTensorProcessor(config=config.to_dict())
    with safe_open(os.path.join(smollm2_folder, "model.safetensors"), "np") as ours:
        assert {k: tuple(ours.get_slice(k).get_shape()) for k in ours.keys()} == expected
        checked = 0
        for tensor in GGUFReader(gguf_path()).tensors:
            name = transformers_name(tensor.name, "")
            if not (name.startswith(("model.layers.0.", "model.layers.29.")) or "layers" not in name):
                continue  # the first and last blocks and everything outside blocks: every kind of tensor
            reference = processor.process(dequantize(tensor.data, tensor.tensor_type), tensor.name).weights
            np.testing.assert_array_equal(ours.get_tensor(name), reference, err_msg=name)
            checked += 1
        assert checked == 2 * 9 + 2


def test_conversion_peak_memory_is_about_one_copy_of_the_weights(smollm2_folder, tmp_path):
    script = tmp_path / "convert.py"
    script.write_text(
        "import hashlib, json\n"
        "from cirkit.models.embedded import GGUFConfig, locate_gguf, convert_gguf\n"
        "files = convert_gguf.fn(GGUFConfig(), locate_gguf.fn(GGUFConfig()))\n"
        "i = files.names.index('model.safetensors')\n"
        "blob = files.blob[files.offsets[i]:files.offsets[i + 1]]\n"
        "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'peak_mib': int(peak) / 1024,\n"
        "                  'sha256': hashlib.sha256(blob).hexdigest(), 'bytes': int(blob.size)}))\n")
    # VmHWM, not ru_maxrss: Linux carries the parent's resident size at fork into the child's ru_maxrss
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=cli_env(), check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with open(os.path.join(smollm2_folder, "model.safetensors"), "rb") as f:
        cached = hashlib.file_digest(f, "sha256").hexdigest()
    assert result["sha256"] == cached, "the same bytes as the cached conversion"
    # 513 MiB of float32 weights; transformers, tokenizers and the memory-mapped GGUF add about 0.6 GB
    assert result["peak_mib"] < 1600, result


def test_a_cached_conversion_is_not_read_back_when_its_folder_is_complete(builtin_world, smollm2_folder, tmp_path):
    from cirkit.builtin.files import ExportConfig
    from cirkit.engine import Engine, Store
    from cirkit.pipelines.embedded import embedded_reasoner

    def run(directory):
        engine = Engine(Store(str(builtin_world["store"])), progress=False)
        folder = embedded_reasoner(engine, ExportConfig(str(directory))).value
        return folder, {s.step: (s.stage, s.status) for s in engine.steps}, engine

    folder, steps, engine = run(builtin_world["export"])
    assert folder == smollm2_folder
    assert steps["convert_reasoner"] == ("convert_gguf", "hit")
    assert steps["export_reasoner"] == ("exported_copy", "read"), "named by digest, the weights stay in the store"
    assert not any(type(v).__name__ == "FileSet" for v in engine._memo.values()), "nothing loaded the 513 MiB set"
    # another export folder: the file set is read back and written there, and gives the same value
    elsewhere, steps, _ = run(tmp_path / "export")
    assert steps["export_reasoner"] == ("export_files", "read")
    assert os.path.basename(elsewhere) == os.path.basename(folder)
    assert os.path.getsize(os.path.join(elsewhere, "model.safetensors")) == os.path.getsize(
        os.path.join(folder, "model.safetensors"))
