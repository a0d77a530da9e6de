"""The encoder registry over two kinds: CLIP and cirkit's causal LM with pooled hidden states."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the checkpoints are written by transformers + torch (the test extra)")

from clip_fixtures import make_clip_checkpoint  # noqa: E402
from lm_fixtures import make_word_lm  # noqa: E402

from cirkit.data.filehash import FileDigests  # noqa: E402
from cirkit.encoders.clip_encoder import ClipEncoder  # noqa: E402
from cirkit.encoders.interface import Encoder, ModelRef, load_model  # noqa: E402


def _ref(kind, folder):
    return ModelRef(kind, str(folder), FileDigests().folder_digest(str(folder)))


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny random Llama with a word-level tokenizer over its 96-token vocabulary."""
    folder = tmp_path_factory.mktemp("lm")
    make_word_lm(folder)
    return folder


def test_clip_is_one_kind_and_loads_once(tmp_path):
    make_clip_checkpoint(tmp_path)
    ref = _ref("clip", tmp_path)
    encoder = load_model(ref)
    assert isinstance(encoder, ClipEncoder) and isinstance(encoder, Encoder)
    assert load_model(ref) is encoder  # one copy of the weights per (reference, options)
    texts = ["the red dog", "a cat"]
    np.testing.assert_array_equal(encoder.encode_texts(texts), ClipEncoder(str(tmp_path)).encode_texts(texts))


def test_causal_lm_pools_over_real_tokens_only(lm_folder):
    mean = load_model(_ref("causal_lm", lm_folder), pooling="mean")
    last = load_model(_ref("causal_lm", lm_folder), pooling="last")
    assert isinstance(mean, Encoder) and mean.dim == 64 and last is not mean
    short, long = "w3 w7 w9", "w1 w5 w8 w13 w21 w34 w55 w89 w4 w6"
    alone = mean.encode_texts([short])
    batched = mean.encode_texts([long, short])  # the short text is left-padded in this batch
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5, rtol=0)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)
    np.testing.assert_allclose(last.encode_texts([long, short])[1], last.encode_texts([short])[0], atol=1e-5, rtol=0)
    assert not np.allclose(last.encode_texts([short]), alone, atol=1e-3)
    with pytest.raises(ValueError, match="does not embed images"):
        mean.encode_files(["x.png"])


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"model kind 'siglip' is not registered; known kinds: causal_lm, cir_cot, cir_lvlm, clip"):
        load_model(ModelRef("siglip", str(tmp_path), "0"))
