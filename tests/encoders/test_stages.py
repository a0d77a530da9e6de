"""Per-item cached embedding stages over real image files and texts."""

import shutil

import numpy as np
import pytest

pytest.importorskip("torch", reason="checkpoints are written with transformers + torch (the torch extra)")

from clip_fixtures import make_clip_checkpoint  # noqa: E402
from conftest import make_images  # noqa: E402

from cirkit.data.model import Gallery, ImageRef, Split  # noqa: E402
from cirkit.data.stage import with_content_hashes  # noqa: E402
from cirkit.encoders.clip_encoder import ClipEncoder  # noqa: E402
from cirkit.encoders.stages import EmbedConfig, clip_checkpoint, embed_images, embed_texts  # noqa: E402
from cirkit.engine import Engine, Store  # noqa: E402


def gallery_in(folder, n=12):
    paths = [folder / f"im{i}.png" for i in range(n)]
    make_images(paths, size=(40, 30))
    split = Split("t", "val", Gallery("g", tuple(ImageRef(f"im{i}", str(p)) for i, p in enumerate(paths))), ())
    return with_content_hashes(split).gallery.images


def test_image_embeddings_are_cached_by_content_not_path(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRKIT_CACHE", str(tmp_path / "cache"))
    make_clip_checkpoint(tmp_path / "ck")
    model = clip_checkpoint(str(tmp_path / "ck"))
    images = gallery_in(tmp_path / "a")
    store = Store(str(tmp_path / "store"))
    engine = Engine(store, progress=False)
    out = engine.run(embed_images, EmbedConfig(batch_size=5), images=images, model=model)
    direct = ClipEncoder(str(tmp_path / "ck")).encode_files([im.path for im in images])
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    assert np.abs(out.value - direct).max() < 1e-5
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = gallery_in(tmp_path / "b")  # same pixels, new paths
    engine2 = Engine(store, progress=False)
    again = engine2.run(embed_images, EmbedConfig(batch_size=7), images=moved + gallery_in(tmp_path / "c", 14)[12:],
                        model=model)
    step = engine2.steps[0]
    assert (step.items_cached, step.items_total) == (12, 14), "moved files and a new batch size reuse the cache"
    assert np.array_equal(again.value[:12], out.value)


def test_text_embeddings_and_float16_storage(tmp_path):
    make_clip_checkpoint(tmp_path / "ck")
    model = clip_checkpoint(str(tmp_path / "ck"))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    texts = tuple(f"the red dog {i}" for i in range(30))
    f32 = engine.run(embed_texts, EmbedConfig(), texts=texts, model=model, step="f32").value
    f16 = engine.run(embed_texts, EmbedConfig(storage_dtype="float16"), texts=texts, model=model, step="f16").value
    assert f32.dtype == np.float32 and f16.dtype == np.float16
    assert np.abs(f16.astype(np.float32) - f32).max() < 1e-3
    assert np.array_equal(np.argmax(f32 @ f32.T, 1), np.argmax(f16.astype(np.float32) @ f32.T, 1))
