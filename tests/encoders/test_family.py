"""The generic embedding stages over several encoder kinds: CLIP, cirkit's causal LM (pooled hidden states)
and a tiny composed kind registered by this test, through the same stages and the same per-item cache."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the checkpoints are written by transformers + torch (the test extra)")

from clip_fixtures import make_clip_checkpoint  # noqa: E402
from conftest import make_images  # noqa: E402
from lm_fixtures import make_word_lm  # noqa: E402
from PIL import Image  # noqa: E402

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split  # noqa: E402
from cirkit.data.stage import with_content_hashes  # noqa: E402
from cirkit.encoders import interface  # noqa: E402
from cirkit.encoders.clip_encoder import ClipEncoder  # noqa: E402
from cirkit.encoders.interface import load_model, model_ref, register_encoder, release_encoders  # noqa: E402
from cirkit.encoders.stages import EmbedConfig, composed_inputs, embed_images, embed_queries, embed_texts  # noqa: E402
from cirkit.engine import Engine, Store  # noqa: E402
from cirkit.models.backends.clip_substitutes import ClipSubstituteBackend  # noqa: E402
from cirkit.models.config import BackendConfig  # noqa: E402


class ToyComposed:
    """A real (if tiny) composed encoder: an image is its mean RGB, a text its counts of a, e and o, a query
    the sum. It counts loads and encoded items so the test can see what the stages recompute."""

    loads = 0
    encoded: list[str] = []

    def __init__(self, path: str, dtype: str = "float32") -> None:
        type(self).loads += 1
        self.path = path

    @property
    def dim(self) -> int:
        return 3

    def encode_texts(self, texts):
        type(self).encoded.extend(texts)
        return np.array([[t.count("a") + 1, t.count("e"), t.count("o")] for t in texts], np.float32)

    def encode_files(self, paths, boxes=None):
        type(self).encoded.extend(paths)
        return np.array([np.asarray(Image.open(p).convert("RGB"), np.float32).mean((0, 1)) for p in paths], np.float32)

    def encode_queries(self, paths, texts, boxes=None):
        return self.encode_files(paths) + self.encode_texts(texts)


@pytest.fixture
def toy_kind(tmp_path):
    register_encoder("toy_composed", ToyComposed)
    ToyComposed.loads, ToyComposed.encoded = 0, []
    release_encoders()
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "weights.txt").write_text("toy")
    yield model_ref("toy_composed", str(tmp_path / "toy"))
    interface._KINDS.pop("toy_composed")
    release_encoders()


def gallery(folder, n):
    paths = [folder / f"im{i}.png" for i in range(n)]
    make_images(paths, size=(12, 10))
    split = Split("t", "val", Gallery("g", tuple(ImageRef(f"im{i}", str(p)) for i, p in enumerate(paths))), ())
    return with_content_hashes(split).gallery.images


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_clip_and_causal_lm_through_the_same_stages(tmp_path):
    make_clip_checkpoint(tmp_path / "clip")
    make_word_lm(tmp_path / "lm")
    clip, lm = model_ref("clip", str(tmp_path / "clip")), model_ref("causal_lm", str(tmp_path / "lm"), pooling="last")
    assert clip.code and lm.code and clip.code != lm.code, "each kind's code enters its reference"
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    texts = ("w3 w7 w9", "w1 w5 w8 w13", "w2")
    config = EmbedConfig()
    by_clip = engine.run(embed_texts, config, texts=texts, model=clip, step="clip").value
    by_lm = engine.run(embed_texts, config, texts=texts, model=lm, step="lm").value
    assert by_clip.shape == (3, 32) and by_lm.shape == (3, 64)
    np.testing.assert_allclose(by_clip, unit(ClipEncoder(str(tmp_path / "clip")).encode_texts(list(texts))), atol=1e-5)
    direct = load_model(lm, dtype="float32").encode_texts(list(texts))
    np.testing.assert_allclose(by_lm, unit(direct), atol=1e-5)
    lm_mean = model_ref("causal_lm", str(tmp_path / "lm"), pooling="mean")
    mean = engine.run(embed_texts, config, texts=texts, model=lm_mean, step="lm_mean").value
    assert not np.allclose(mean, by_lm, atol=1e-3), "the kind's model options (pooling) reach the loaded encoder"
    images = gallery(tmp_path / "g", 3)
    assert engine.run(embed_images, config, images=images, model=clip, step="clip_images").value.shape == (3, 32)
    with pytest.raises(ValueError, match="kind 'causal_lm'.* does not embed images"):
        engine.run(embed_images, config, images=images, model=lm, step="lm_images")


def test_a_kind_option_keys_only_that_kinds_embeddings(tmp_path):
    """Pooling is the causal LM's model option: it keys LM embeddings and never CLIP's, while an option CLIP
    reads (preprocessing) keys CLIP's."""
    make_clip_checkpoint(tmp_path / "clip")
    make_word_lm(tmp_path / "lm")
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    texts = ("w3 w7 w9", "w2")
    clip = model_ref("clip", str(tmp_path / "clip"))

    names = iter(range(100))

    def key(config, model):
        return engine.run(embed_texts, config, texts=texts, model=model, step=f"k{next(names)}").key

    mean, last = (model_ref("causal_lm", str(tmp_path / "lm"), pooling=p) for p in ("mean", "last"))
    assert mean.options == (("pooling", "mean"),) and clip.options == ()
    assert key(EmbedConfig(), mean) != key(EmbedConfig(), last), "pooling keys the LM's embeddings"
    assert not hasattr(EmbedConfig(), "pooling"), "no LM option in the config every kind's key holds"
    clip_key = key(EmbedConfig(), clip)
    assert key(EmbedConfig(), model_ref("clip", str(tmp_path / "clip"))) == clip_key
    assert key(EmbedConfig(preprocessing="targetpad"), clip) != clip_key, "an option CLIP reads keys CLIP's"
    with pytest.raises(ValueError, match="encoder kind 'clip' has no model option 'pooling'"):
        model_ref("clip", str(tmp_path / "clip"), pooling="last")


def test_a_registered_composed_kind_embeds_queries_cached_per_item(tmp_path, toy_kind):
    images = gallery(tmp_path / "g", 6)
    queries = tuple(ComposedQuery(f"q{i}", f"im{i}", text) for i, text in enumerate(["a dog", "ee", "oo", "a", "e"]))
    split = Split("t", "val", Gallery("g", images), queries)
    store = Store(str(tmp_path / "store"))
    engine = Engine(store, progress=False)
    inputs = engine.run(composed_inputs, None, split=split)
    out = engine.run(embed_queries, EmbedConfig(normalise=False), queries=inputs, model=toy_kind).value
    pixels = ToyComposed("x").encode_files([im.path for im in images[:5]])
    np.testing.assert_allclose(out[0], pixels[0] + [2, 0, 1])  # "a dog": a+1, no e, one o
    np.testing.assert_allclose(out[1], pixels[1] + [1, 2, 0])
    first = engine.run(embed_images, EmbedConfig(normalise=False), images=images[:5], model=toy_kind).value
    np.testing.assert_allclose(first, pixels, rtol=1e-6)
    ToyComposed.encoded = []
    engine2 = Engine(store, progress=False)
    again = engine2.run(embed_images, EmbedConfig(normalise=False), images=images, model=toy_kind).value
    assert ToyComposed.encoded == [images[5].path], "one added image recomputes exactly that image"
    assert (engine2.steps[0].items_cached, engine2.steps[0].items_total) == (5, 6)
    np.testing.assert_array_equal(again[:5], first)
    more = Split("t", "val", Gallery("g", images), queries + (ComposedQuery("q5", "im5", "o"),))
    engine2.run(embed_queries, EmbedConfig(normalise=False), model=toy_kind,
                queries=engine2.run(composed_inputs, None, split=more))
    assert ToyComposed.encoded[1:] == [images[5].path, "o"], "one added query recomputes exactly that query"
    assert ToyComposed.loads == 2, "one registry load for three stages (plus the direct one above)"


def test_a_kind_without_queries_is_named(tmp_path):
    make_clip_checkpoint(tmp_path / "clip")
    images = gallery(tmp_path / "g", 2)
    split = Split("t", "val", Gallery("g", images), (ComposedQuery("q0", "im0", "red"),))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    inputs = engine.run(composed_inputs, None, split=split)
    with pytest.raises(ValueError, match=r"^encoder kind 'clip' cannot embed composed queries"):
        engine.run(embed_queries, EmbedConfig(), queries=inputs, model=model_ref("clip", str(tmp_path / "clip")))
    missing = Split("t", "val", Gallery("g", images), (ComposedQuery("q9", "nope", "red"),))
    with pytest.raises(ValueError, match="query 'q9' has reference 'nope', which is not in the gallery"):
        engine.run(composed_inputs, None, split=missing, step="missing")


def test_the_substitutes_reuse_the_stages_encoder(tmp_path, monkeypatch):
    make_clip_checkpoint(tmp_path / "clip")
    release_encoders()
    loads = []
    real_init = ClipEncoder.__init__

    def counting_init(self, *args, **kwargs):  # a spy: the real constructor runs
        loads.append(args[0] if args else kwargs.get("directory"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ClipEncoder, "__init__", counting_init)
    backend = ClipSubstituteBackend(BackendConfig("clip", model=str(tmp_path / "clip")))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    ref = model_ref("clip", str(tmp_path / "clip"))
    engine.run(embed_texts, EmbedConfig(), texts=("a red dog",), model=ref)
    engine.run(embed_images, EmbedConfig(), images=gallery(tmp_path / "g", 2), model=ref)
    assert len(loads) == 1, f"one CLIP load for the substitutes and the embedding stages, got {len(loads)}"
    assert backend.encoder is load_model(ref, dtype="float32", preprocessing="clip", target_ratio=1.25)


def test_a_store_written_before_the_family_still_decodes_its_clip_reference():
    from cirkit.engine.codec import decode

    old = {"$dataclass": "cirkit.encoders.stages:ClipCheckpoint", "fields": {"path": "/m/clip", "digest": "ab12"}}
    assert decode(old, []).as_ref() == interface.ModelRef("clip", "/m/clip", "ab12")
