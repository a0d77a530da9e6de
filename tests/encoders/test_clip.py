"""cirkit's Flax CLIP against transformers' PyTorch CLIPModel on small random checkpoints in the real formats."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity tests need the torch extra (torch==2.13.0)")

from clip_fixtures import make_clip_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402

from cirkit.encoders.clip_config import CheckpointError  # noqa: E402
from cirkit.encoders.clip_encoder import ClipEncoder  # noqa: E402
from cirkit.encoders.clip_image import ImageDecodeError, ImagePrep, preprocess  # noqa: E402

TEXTS = ["the red dog", "a cat and the dog", "the cat", "red red red", "Ünïcode & emoji ✓ " * 3, "x " * 40, ""]


@pytest.fixture(scope="module", params=["quick_gelu", "gelu"])
def checkpoint(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"clip-{request.param}")
    model = make_clip_checkpoint(directory, act=request.param, seed=1 if request.param == "gelu" else 0)
    return directory, model


def torch_text(model, ids):
    with torch.no_grad():
        return model.get_text_features(input_ids=torch.tensor(ids, dtype=torch.long)).pooler_output.numpy()


def torch_image(model, pixels):
    with torch.no_grad():
        return model.get_image_features(pixel_values=torch.tensor(pixels)).pooler_output.numpy()


def test_text_and_image_embeddings_match_transformers(checkpoint):
    directory, model = checkpoint
    enc = ClipEncoder(str(directory))
    ids = enc.tokenizer(TEXTS)
    ours_t, ref_t = enc.encode_token_ids(ids), torch_text(model, ids)
    assert np.abs(ours_t - ref_t).max() < 1e-4
    pixels = np.random.default_rng(0).standard_normal((9, 3, 32, 32)).astype(np.float32)
    ours_i, ref_i = enc.encode_pixels(pixels), torch_image(model, pixels)
    assert np.abs(ours_i - ref_i).max() < 1e-4
    # same top-k rankings, text -> image
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    ours_rank = np.argsort(-(norm(ours_t) @ norm(ours_i).T), axis=1)[:, :5]
    ref_rank = np.argsort(-(norm(ref_t) @ norm(ref_i).T), axis=1)[:, :5]
    assert np.array_equal(ours_rank, ref_rank)


def test_tokenizer_matches_clip_tokenizer_with_truncation(checkpoint):
    from transformers import CLIPTokenizer

    directory, _ = checkpoint
    enc = ClipEncoder(str(directory))
    ref = CLIPTokenizer.from_pretrained(str(directory))
    ids = enc.tokenizer(TEXTS)
    expected = ref(TEXTS, padding="max_length", truncation=True, max_length=16)["input_ids"]
    assert ids.tolist() == expected
    long = ids[TEXTS.index("x " * 40)]
    assert long[0] == ref.bos_token_id and long[-1] == ref.eos_token_id and len(long) == 16
    assert ids[-1][0] == ref.bos_token_id and ids[-1][1] == ref.eos_token_id  # empty text


def test_legacy_eos_pooling(tmp_path):
    model = make_clip_checkpoint(tmp_path, legacy_eos=True)
    enc = ClipEncoder(str(tmp_path))
    ids = enc.tokenizer(TEXTS[:3])
    assert np.abs(enc.encode_token_ids(ids) - torch_text(model, ids)).max() < 1e-4


def random_images():
    rng = np.random.default_rng(3)
    sizes = [(32, 32), (50, 37), (37, 50), (200, 64), (20, 28), (33, 33), (64, 200)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def test_preprocessing_matches_clip_image_processor():
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    for size in (32, 224):
        ref = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        for image in random_images():
            expected = ref(images=image, return_tensors="np")["pixel_values"][0]
            ours = preprocess(image, ImagePrep(size, size))
            assert ours.shape == expected.shape and np.abs(ours - expected).max() < 1e-5


def test_targetpad_pads_only_elongated_images():
    prep = ImagePrep(32, 32, mode="targetpad", target_ratio=1.25)
    square = Image.new("RGB", (40, 40), (255, 255, 255))
    assert np.allclose(preprocess(square, prep), preprocess(square, ImagePrep(32, 32)))
    wide = Image.new("RGB", (100, 40), (255, 255, 255))
    padded = preprocess(wide, prep)
    black = (0 - np.asarray(prep.mean)) / np.asarray(prep.std)
    assert np.allclose(padded[:, 0, 16], black, atol=1e-5), "top rows are the black padding"
    assert not np.allclose(preprocess(wide, ImagePrep(32, 32))[:, 0, 16], black, atol=1e-5)


def test_sharded_checkpoint_and_image_files(tmp_path):
    model = make_clip_checkpoint(tmp_path / "ck", shard_size="50KB")
    assert (tmp_path / "ck" / "model.safetensors.index.json").exists()
    enc = ClipEncoder(str(tmp_path / "ck"))
    images = random_images()
    paths = []
    for i, im in enumerate(images):
        paths.append(str(tmp_path / f"im{i}.png"))
        im.save(paths[-1])
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    pixels = CLIPImageProcessorPil.from_pretrained(str(tmp_path / "ck"))(images=images, return_tensors="np")["pixel_values"]
    assert np.abs(enc.encode_files(paths) - torch_image(model, pixels)).max() < 1e-4
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageDecodeError, match="bad.png: cannot decode image"):
        enc.encode_files([paths[0], str(tmp_path / "bad.png")])


def test_buckets_and_bf16(checkpoint):
    directory, _ = checkpoint
    enc = ClipEncoder(str(directory), buckets=(1, 8))
    texts = [f"the dog {i}" for i in range(19)]
    together = enc.encode_texts(texts)
    alone = np.concatenate([enc.encode_texts([t]) for t in texts[:3]])
    assert np.abs(together[:3] - alone).max() < 1e-5
    assert enc._text._cache_size() <= 2, "one compilation per bucket"
    bf16 = ClipEncoder(str(directory), dtype="bfloat16").encode_texts(texts)
    cos = np.sum(bf16 * together, 1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(together, axis=1)
    assert cos.min() > 0.98


def edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(json.dumps(config))


def test_loading_errors_say_what_is_wrong(tmp_path):
    from safetensors.numpy import load_file, save_file

    base = tmp_path / "base"
    make_clip_checkpoint(base)

    def variant(name):
        target = tmp_path / name
        shutil.copytree(base, target)
        return target

    d = variant("arch")
    edit_config(d, model_type="siglip", architectures=["SiglipModel"])
    with pytest.raises(CheckpointError, match="unknown architecture.*siglip"):
        ClipEncoder(str(d))

    d = variant("missing")
    tensors = load_file(d / "model.safetensors")
    del tensors["text_model.encoder.layers.1.mlp.fc2.bias"]
    tensors["text_model.encoder.layers.9.extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, d / "model.safetensors")
    with pytest.raises(CheckpointError) as info:
        ClipEncoder(str(d))
    assert "missing tensors for text_model.encoder.layers.1.mlp.fc2.bias" in str(info.value)
    assert "unexpected tensors text_model.encoder.layers.9.extra.weight" in str(info.value)

    d = variant("shape")
    edit_config(d, **{"vision_config.intermediate_size": 100})
    with pytest.raises(CheckpointError, match=r"vision_model.encoder.layers.\d.mlp.fc1.(weight|bias) has shape \(128,?( 64)?\); this config expects \(100,?( 64)?\)"):
        ClipEncoder(str(d))

    d = variant("nothing")
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        ClipEncoder(str(d))


@pytest.mark.prebuild("clip_two_devices")
def test_data_parallel_over_several_devices_matches_one(prebuilds):
    """Two XLA host devices (a fresh process: tests/two_device_probes.py): the batch is sharded, results equal one
    device's."""
    from two_device_probes import CLIP_TEXTS

    folder = prebuilds.wait("clip_two_devices")
    assert json.loads((folder / "result.json").read_text())["buckets"] == [2, 8], "buckets rounded to the devices"
    one = ClipEncoder(str(folder / "ck")).encode_texts(CLIP_TEXTS)
    assert np.abs(np.load(folder / "two.npy") - one).max() < 1e-5
