"""The local transformers backend (torch, in process) on the converted SmolLM2 and on a tiny random LLaVA."""

from cirkit.models.config import BackendConfig
from cirkit.models.requests import Decoding


def test_local_transformers_backend_batches_and_gives_yes_probabilities(smollm2_folder):
    from cirkit.models.backends.local_transformers import TransformersBackend
    from cirkit.models.requests import ChatRequest, Message

    backend = TransformersBackend(BackendConfig("transformers", smollm2_folder, batch_size=2))
    requests = [ChatRequest("verifier", "t", "h", (Message("user", f"Is {x} a colour? Answer Yes or No."),),
                            decoding=Decoding(max_tokens=5, want_probability=True)) for x in ("red", "a table", "blue")]
    out = backend.complete(requests)
    assert len(out) == 3 and all(0.0 <= r.yes_probability <= 1.0 for r in out)
    assert all(r.model == backend.name for r in out)
    single = backend.complete(requests[:1])
    assert single[0].text == out[0].text, "left padding: batching does not change greedy output"


def test_local_transformers_vlm(tiny_vlm, tmp_path):
    from conftest import make_images

    from cirkit.data.model import ImageRef
    from cirkit.models.backends.local_transformers import TransformersBackend
    from cirkit.models.requests import ChatRequest, Message

    make_images([tmp_path / "a.png"], size=(40, 40))
    image = ImageRef("a", str(tmp_path / "a.png"), content="a" * 64)
    backend = TransformersBackend(BackendConfig("transformers", tiny_vlm, batch_size=2))
    request = ChatRequest("captioner", "t", "h", (Message("user", "Describe it.", (image,)),), decoding=Decoding(max_tokens=4))
    out = backend.complete([request, request])
    assert len(out) == 2 and out[0].text == out[1].text
