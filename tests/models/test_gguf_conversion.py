"""The streamed GGUF -> safetensors conversion of SmolLM2: the same tensors as transformers' own GGUF reading,
every parameter of the transformers model present with its shape, and a peak memory near one copy of the
weights (the from_pretrained/save_pretrained route it replaced peaked at 3.0 GB for this 135M model)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference is transformers + torch (the test extra)")
pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (the test extra)")

from cirkit.models.gguf_to_safetensors import read_tensors, transformers_name, unpermute_rows  # noqa: E402


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


def test_the_tensor_table_is_read_past_every_kind_of_metadata_and_the_files_alignment(tmp_path):
    import gguf

    path = str(tmp_path / "tiny.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    writer.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
    writer.add_string("general.name", "a tiny GGUF for tests")
    q = np.arange(6, dtype=np.float32).reshape(2, 3)
    writer.add_tensor("blk.0.attn_q.weight", q)
    writer.add_tensor("output_norm.weight", np.arange(5, dtype=np.float16))
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        write()
    writer.close()
    header_end = open(path, "rb").read().rfind(b"output_norm.weight") + 18 + 4 + 8 + 4 + 8  # its 1-d info ends it
    assert 0 < header_end % 64 <= 32, "the data would start elsewhere with the default alignment (32)"
    tensors = read_tensors(path)
    assert [(t.name, t.shape, t.tensor_type.name) for t in tensors] == [
        ("blk.0.attn_q.weight", (2, 3), "F32"), ("output_norm.weight", (5,), "F16")]
    np.testing.assert_array_equal(gguf.dequantize(tensors[0].data, tensors[0].tensor_type), q)
    np.testing.assert_array_equal(gguf.dequantize(tensors[1].data, tensors[1].tensor_type), np.arange(5))

    (tmp_path / "short.gguf").write_bytes(open(path, "rb").read()[:100])  # cut inside the metadata
    with pytest.raises(ValueError, match=r"short\.gguf: truncated GGUF header"):
        read_tensors(str(tmp_path / "short.gguf"))
    (tmp_path / "model.bin").write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(ValueError, match=r"model\.bin: not a GGUF file"):
        read_tensors(str(tmp_path / "model.bin"))


def test_converted_tensors_are_transformers_own_gguf_reading(smollm2_folder):
    import torch
    from gguf import GGUFReader, dequantize
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from cirkit.encoders.safetensors_io import release_pages

    config = AutoConfig.from_pretrained(smollm2_folder)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight")
    processor = LlamaTensorProcessor(config=config.to_dict())
    with safe_open(os.path.join(smollm2_folder, "model.safetensors"), "np") as ours:
        assert {k: tuple(ours.get_slice(k).get_shape()) for k in ours.keys()} == expected
        checked = 0
        reference, table = GGUFReader(gguf_path()).tensors, read_tensors(gguf_path())
        # the converter's own reading of the tensor table is gguf's: every name, type, shape and byte
        assert [(t.name, t.tensor_type, t.shape) for t in table] == [
            (t.name, t.tensor_type, tuple(int(n) for n in reversed(t.shape))) for t in reference]
        for ours_tensor, tensor in zip(table, reference):
            assert np.array_equal(ours_tensor.data, np.asarray(tensor.data).view(np.uint8)), tensor.name
            release_pages(ours_tensor.data, tensor.data)  # the 100 MiB file is not all held resident twice
        for tensor in reference:
            name = transformers_name(tensor.name, "")
            if not (name.startswith(("model.layers.0.", "model.layers.29.")) or "layers" not in name):
                continue  # the first and last blocks and everything outside blocks: every kind of tensor
            reference = processor.process(dequantize(tensor.data, tensor.tensor_type), tensor.name).weights
            np.testing.assert_array_equal(ours.get_tensor(name), reference, err_msg=name)
            checked += 1
        assert checked == 2 * 9 + 2


@pytest.mark.prebuild("gguf_tokenizer")
def test_the_tokenizer_files_are_those_autotokenizer_makes_from_the_gguf(smollm2_folder, prebuilds):
    """transformers' own files (AutoTokenizer reading the GGUF, in the background: tests/prebuild.py)."""
    made = prebuilds.wait("gguf_tokenizer")
    written = sorted(p.name for p in made.iterdir())
    assert written == ["chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]
    for n in written:
        with open(os.path.join(smollm2_folder, n), "rb") as f:
            assert f.read() == (made / n).read_bytes(), n


@pytest.mark.prebuild("gguf_peak")
def test_conversion_peak_memory_is_about_one_copy_of_the_weights(smollm2_folder, prebuilds):
    """A conversion alone in a fresh process (run in the background while earlier tests ran, tests/prebuild.py):
    its peak memory, and the same bytes as the cached conversion made by another process."""
    result = json.loads((prebuilds.wait("gguf_peak") / "result.json").read_text())
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
