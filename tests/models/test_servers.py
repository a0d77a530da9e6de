"""The OpenAI-compatible backend against one real `transformers serve`: the converted SmolLM2 for text, a tiny
random LLaVA for the image path (the server loads each folder a request names)."""

import pytest
from conftest import served_model_id

from cirkit.engine import Engine, Store
from cirkit.models.config import BackendConfig
from cirkit.models.prompts import PromptConfig
from cirkit.models.requests import Decoding
from cirkit.models.roles import EngineRoles, RoleConfig

FIELDS = ({"reference": "a red circle on a white background", "instruction": "make it blue"},
          {"reference": "two dogs on grass", "instruction": "remove one dog"},
          {"reference": "a cat on a sofa", "instruction": "add a second cat"})


def reason(engine, backend, prompt=PromptConfig("generic/reasoner")):
    roles = EngineRoles(engine)
    config = RoleConfig(backend, prompt, Decoding(max_tokens=16))  # short: the server decodes one request at a time
    answers = roles.reason(config, FIELDS, (None, None, None), fallbacks=tuple(f["reference"] for f in FIELDS),
                           required=("target",))
    return answers


def statuses(engine):
    return {s.step: s.status for s in engine.steps}


@pytest.fixture(scope="module")
def served_store(tmp_path_factory):
    """One store for the module: the second test's unchanged prompt is the first test's cached answers."""
    return tmp_path_factory.mktemp("served")


def test_reasoner_through_a_real_openai_compatible_server(transformers_server, served_store):
    tmp_path = served_store
    backend = BackendConfig("openai", transformers_server["model"], base_url=transformers_server["base_url"],
                            max_in_flight=2, api_key="not-a-secret-in-records")
    store = Store(str(tmp_path))
    engine = Engine(store, progress=False)
    answers = reason(engine, backend).value
    assert answers.models == (served_model_id(transformers_server),) * 3, "the model id the server reports is recorded"
    for value, ok, field in zip(answers.values, answers.ok, FIELDS):
        if ok:
            assert isinstance(value, dict) and isinstance(value["target"], (str, list)), value
        else:
            assert value == field["reference"], "a failed parse uses the recorded fallback, the reference caption"
    chat_key = next(s.key for s in engine.steps if s.step == "reasoner/chat")
    assert "not-a-secret-in-records" not in (tmp_path / store.record_path(chat_key)).read_text()

    again = Engine(store, progress=False)
    assert reason(again, backend).value == answers
    assert statuses(again)["reasoner/chat"] == "hit", "every call is cached"

    pinned = Engine(store, progress=False)
    reason(pinned, BackendConfig("openai", transformers_server["model"], snapshot="2026-11-01",
                                 base_url=transformers_server["base_url"]))
    assert statuses(pinned)["reasoner/chat"] == "computed", "another snapshot is a miss"


def test_user_prompt_file_changes_the_key(transformers_server, served_store, tmp_path):
    backend = BackendConfig("openai", transformers_server["model"], base_url=transformers_server["base_url"])
    store = Store(str(served_store))
    first = Engine(store, progress=False)
    reason(first, backend)
    assert statuses(first)["reasoner/chat"] == "hit", "delivery settings (key, requests in flight) are not in keys"
    custom = tmp_path / "official.txt"
    custom.write_text("---user---\nOriginal: ${reference}\nEdit: ${instruction}\nAnswer in JSON with key target.")
    engine = Engine(store, progress=False)
    reason(engine, backend, PromptConfig("generic/reasoner", str(custom)))
    assert statuses(engine)["reasoner/chat"] == "computed"


def test_image_path_against_a_real_server(vlm_server, tmp_path):
    """Images as base64 data URLs through the real server running a tiny random LLaVA."""
    from conftest import make_images

    from cirkit.data.model import ImageRef

    paths = [tmp_path / f"im{i}.png" for i in range(2)]
    make_images(paths, size=(40, 40))
    images = tuple(ImageRef(f"im{i}", str(p), content=f"{i:064x}") for i, p in enumerate(paths))
    backend = BackendConfig("openai", vlm_server["model"], base_url=vlm_server["base_url"])
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    roles = EngineRoles(engine)
    captions = roles.caption(RoleConfig(backend, PromptConfig("generic/captioner"), Decoding(max_tokens=6)), images).value
    assert captions.models == (served_model_id(vlm_server),) * 2
    verdicts = roles.verify(RoleConfig(backend, PromptConfig("generic/verifier"), Decoding(max_tokens=3)), images,
                            ("is it red?", "is it blue?")).value
    assert len(verdicts.values) == 2  # a random model rarely says yes or no: those count as fallbacks
    assert "POST /v1/chat/completions" in vlm_server["log"].read_text()
