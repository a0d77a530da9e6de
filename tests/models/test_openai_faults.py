"""Faults and bad input: retries, unreachable servers, failures mid-run, malformed and adversarial answers.

The misbehaving server here is a real HTTP server on 127.0.0.1 (stdlib), scripted per request: the real
`transformers serve` cannot be told to fail on cue.
"""

import json
import time

import numpy as np
import pytest
from conftest import free_port, make_images
from fake_servers import Scripted, Trickle
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit.data.model import ImageRef
from cirkit.engine import Engine, Store
from cirkit.models.backends.openai_compat import read_response
from cirkit.models.config import BackendConfig, BackendError
from cirkit.models.prompts import PromptConfig, PromptError, Template, load_template
from cirkit.models.requests import Decoding
from cirkit.models.roles import EngineRoles, RoleConfig
from cirkit.models.stages import make_backend
from cirkit.models.structured import parse_json, parse_yes_no

OK = {"model": "scripted-1", "choices": [{"message": {"content": "Yes"}, "finish_reason": "stop"}]}


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        servers.append(Scripted(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def one_image(tmp_path_factory):
    global IMAGE_PATH
    IMAGE_PATH = str(tmp_path_factory.mktemp("img") / "x.png")
    make_images([IMAGE_PATH])


def verify(engine, backend, n=3, images=None):
    """n verifier calls; the images share one file but differ by content hash, so each is its own request."""
    images = images or tuple(ImageRef(f"im{i}", IMAGE_PATH, content=f"{i:064x}") for i in range(n))
    questions = tuple(f"is there a dog number {i}?" for i in range(len(images)))
    config = RoleConfig(backend, PromptConfig("generic/verifier"), Decoding(max_tokens=3, want_probability=True))
    return EngineRoles(engine).verify(config, images, questions)


def test_retries_on_429_and_5xx(scripted, tmp_path):
    def script(n, body):
        if n == 0:
            return 429, {"error": "slow down"}, {"retry-after": "0"}
        if n == 1:
            return 503, {"error": "busy"}, {}
        return 200, OK, {}

    server = scripted(script)
    backend = BackendConfig("openai", "m", base_url=server.url, max_in_flight=1, backoff=0.01)
    answers = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    assert answers.values == (True,) and answers.models == ("scripted-1",) and len(server.bodies) == 3
    body = server.bodies[-1]
    assert body["temperature"] == 0.0 and body["seed"] == 0 and body["logprobs"] is True


def test_unreachable_server_gives_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = BackendConfig("openai", "m", snapshot="pinned", base_url=url, retries=2, backoff=0.01, timeout=2)
    with pytest.raises(BackendError, match=r"127.0.0.1:\d+/v1/chat/completions failed after 3 attempts \(Connect"):
        _ = verify(Engine(Store(str(tmp_path)), progress=False), backend).value


def test_client_errors_are_not_retried(scripted, tmp_path):
    server = scripted(lambda n, b: (401, {"error": "bad key"}, {}))
    backend = BackendConfig("openai", "m", base_url=server.url, backoff=0.01)
    with pytest.raises(BackendError, match="refused the request \\(HTTP 401"):
        _ = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    assert len(server.bodies) == 1


def test_a_server_failing_mid_run_keeps_what_finished(scripted, tmp_path):
    state = {"broken": True}
    server = scripted(lambda n, b: (500, {"error": "down"}, {}) if state["broken"] and n >= 16 else (200, OK, {}))
    backend = BackendConfig("openai", "m", base_url=server.url, max_in_flight=1, retries=1, backoff=0.01)
    store = Store(str(tmp_path))
    with pytest.raises(BackendError, match="failed after 2 attempts"):
        _ = verify(Engine(store, progress=False), backend, n=20).value
    state["broken"] = False
    before = len(server.bodies)
    engine = Engine(store, progress=False)
    answers = verify(engine, backend, n=20).value
    assert len(answers.values) == 20
    assert len(server.bodies) - before == 4, "the first 16 answers were kept; only the last 4 are asked again"
    step = next(s for s in engine.steps if s.step == "verifier/chat")
    assert (step.items_cached, step.items_total) == (16, 20)


def test_a_non_json_200_is_retried_and_the_retry_answers(scripted, tmp_path):
    server = scripted(lambda n, b: (200, b"<html>502 from a proxy</html>", {}) if n == 0 else (200, OK, {}))
    backend = BackendConfig("openai", "m", base_url=server.url, max_in_flight=1, retries=2, backoff=0.01)
    answers = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    assert answers.values == (True,) and answers.ok == (True,) and len(server.bodies) == 2


HOSTILE = b"[" * 100_000  # nested deep enough to exhaust the JSON parser's recursion


@pytest.mark.parametrize("bad_body", [b"not json at all", HOSTILE], ids=["not-json", "100k-brackets"])
def test_a_request_that_keeps_failing_is_never_cached_while_the_answers_are(scripted, tmp_path, bad_body):
    state = {"broken": True}

    def script(n, body):
        asks_number_1 = "number 1?" in json.dumps(body)
        return (200, bad_body, {}) if state["broken"] and asks_number_1 else (200, OK, {})

    server = scripted(script)
    backend = BackendConfig("openai", "m", base_url=server.url, max_in_flight=1, retries=1, backoff=0.01)
    store = Store(str(tmp_path))
    with pytest.raises(BackendError, match=r"failed after 2 attempts \(HTTP 200 but the body is not JSON"):
        _ = verify(Engine(store, progress=False), backend, n=3).value
    assert len(server.bodies) == 4, "the failing request was tried twice, the others once"
    state["broken"] = False
    before = len(server.bodies)
    engine = Engine(store, progress=False)
    answers = verify(engine, backend, n=3).value
    assert answers.values == (True, True, True) and all(answers.ok)
    assert len(server.bodies) - before == 1, "only the failed request is asked again; the two answers were kept"
    step = next(s for s in engine.steps if s.step == "verifier/chat")
    assert (step.items_cached, step.items_total) == (2, 3)


def test_a_trickling_server_cannot_keep_a_request_alive_past_its_deadline(scripted, tmp_path):
    body = json.dumps(OK).encode()
    server = scripted(lambda n, b: (200, Trickle(body, 0.25), {}))  # the whole answer would take about 20 s
    backend = BackendConfig("openai", "m", base_url=server.url, retries=3, backoff=0.01, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(BackendError, match="deadline"):
        _ = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    assert time.monotonic() - start < len(body) * 0.25 / 2, "the call ended long before the body did"
    assert len(server.bodies) == 1, "the deadline covers every attempt: none starts after it has passed"


def test_no_wait_after_the_last_attempt(scripted, tmp_path):
    server = scripted(lambda n, b: (429, {"error": "slow down"}, {"retry-after": "1"}))
    backend = BackendConfig("openai", "m", base_url=server.url, retries=1, timeout=30)
    with pytest.raises(BackendError, match=r"failed after 2 attempts \(HTTP 429"):
        _ = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    failed_at = time.monotonic()
    assert len(server.bodies) == 2
    assert server.times[1] - server.times[0] >= 0.95, "Retry-After is honoured between attempts"
    assert failed_at - server.times[1] < 0.95, "but not after the last one"


def test_a_retry_after_beyond_the_deadline_fails_at_once(scripted, tmp_path):
    server = scripted(lambda n, b: (503, {"error": "busy"}, {"retry-after": "50"}))
    backend = BackendConfig("openai", "m", base_url=server.url, retries=4, timeout=20)
    with pytest.raises(BackendError, match=r"after 1 attempts; the next one would start after the 20s deadline"):
        _ = verify(Engine(Store(str(tmp_path)), progress=False), backend, n=1).value
    assert len(server.bodies) == 1


def test_backends_are_made_once_per_config_however_many_roles():
    configs = [BackendConfig("openai", f"role-{i}", base_url="http://127.0.0.1:9/v1") for i in range(6)]
    first = [make_backend(c) for c in configs]
    again = [make_backend(c) for c in configs]
    assert all(a is b for a, b in zip(first, again)), "no backend is evicted and made again"
    assert make_backend(configs[0], "/elsewhere") is not first[0], "another location is another backend"


ADVERSARIAL = [b"[]", b"null", json.dumps({"choices": []}).encode(),
               json.dumps({"choices": [{"message": {"content": 42}}]}).encode(),
               json.dumps({"choices": [{"message": {"content": "maybe?" * 10000}}]}).encode(),
               json.dumps({"model": 7, "choices": [{"message": {"content": "Yes"}, "logprobs": {"content": "x"}}]}).encode(),
               json.dumps({"choices": [{"message": {"content": [{"text": "No"}, 5]}}]}).encode()]


def test_malformed_answers_never_crash_a_run_and_are_counted(scripted, tmp_path):
    server = scripted(lambda n, b: (200, ADVERSARIAL[n % len(ADVERSARIAL)], {}))
    backend = BackendConfig("openai", "m", base_url=server.url, max_in_flight=1)
    engine = Engine(Store(str(tmp_path)), progress=False)
    answers = verify(engine, backend, n=len(ADVERSARIAL)).value
    assert len(answers.values) == len(ADVERSARIAL)
    assert answers.values[-2] is True and answers.values[-1] is False  # usable answers still parse
    report = next(s.report for s in engine.steps if s.step == "verifier/parse")
    assert report["fallbacks"] == 5 and report["answers"] == 7, "fallbacks per stage appear in the run's report"


def test_missing_image_file_is_named(scripted, tmp_path):
    server = scripted(lambda n, b: (200, OK, {}))
    backend = BackendConfig("openai", "m", base_url=server.url)
    gone = (ImageRef("gone", str(tmp_path / "gone.png"), content="c" * 64),)
    with pytest.raises(BackendError, match="gone.png: cannot read the image"):
        _ = verify(Engine(Store(str(tmp_path / "s")), progress=False), backend, images=gone).value


def test_images_travel_as_base64_data_urls(scripted, tmp_path):
    server = scripted(lambda n, b: (200, OK, {}))
    path = tmp_path / "red.png"
    make_images([path])
    image = ImageRef("red", str(path), content="ab" * 32)
    backend = BackendConfig("openai", "m", base_url=server.url)
    _ = verify(Engine(Store(str(tmp_path / "s")), progress=False), backend, images=(image,)).value
    parts = server.bodies[0]["messages"][-1]["content"]
    assert parts[0]["type"] == "text" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"choices": st.lists(json_values, max_size=2)}),
                 st.fixed_dictionaries({"choices": st.lists(st.fixed_dictionaries({"message": json_values,
                                                                                      "logprobs": json_values}), max_size=2)})))
def test_fuzzed_response_bodies_never_raise(body):
    response = read_response(body, "m")
    assert isinstance(response.text, str) and isinstance(response.model, str)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzzed_answer_text_never_raises(text):
    assert parse_json(text, {"target": (str, list)}, "fallback").value is not None
    assert parse_yes_no(text).value in (True, False)


def test_json_repair_and_schema():
    fixed = parse_json('Sure! ```json\n{"target": "a blue circle",}\n```', {"target": (str, list)}, "fb")
    assert fixed.ok and fixed.value == {"target": "a blue circle"}
    missing = parse_json('{"other": 1}', {"target": (str, list)}, "fb")
    assert not missing.ok and missing.value == "fb" and "missing key 'target'" in missing.error


def test_templates_are_versioned_files_and_errors_name_them(tmp_path):
    packaged = load_template(PromptConfig("generic/verifier"))
    assert packaged.source == "cirkit/prompts/generic/verifier.txt" and len(packaged.hash) == 64
    with pytest.raises(PromptError, match=r"verifier.txt: template needs \$\{question\}"):
        packaged.render()
    with pytest.raises(PromptError, match="no packaged prompt"):
        load_template(PromptConfig("nope/nothing"))
    with pytest.raises(PromptError, match="prompt file not found"):
        load_template(PromptConfig("x", str(tmp_path / "missing.txt")))
    braces = Template("t", "t", (("user", 'Reply as {"a": "${x}"}'),))
    assert braces.render(x="1") == [("user", 'Reply as {"a": "1"}')]
    shots = tmp_path / "shots.txt"
    shots.write_text("Be brief.\n---user---\nQ: 1+1\n---assistant---\n2\n---user---\nQ: ${q}\n")
    turns = load_template(PromptConfig("x", str(shots))).render(q="2+2")
    assert turns == [("system", "Be brief."), ("user", "Q: 1+1"), ("assistant", "2"), ("user", "Q: 2+2")]
    shots.write_text("---user---\nQ\n---assistant---\nA\n")
    with pytest.raises(PromptError, match="last turn"):
        load_template(PromptConfig("x", str(shots)))


def test_clip_substitutes_are_labelled_and_answer_every_vision_role(tmp_path):
    pytest.importorskip("torch")
    from clip_fixtures import make_clip_checkpoint

    make_clip_checkpoint(tmp_path / "clip")
    paths = [tmp_path / f"im{i}.png" for i in range(3)]
    make_images(paths, size=(32, 32))
    images = tuple(ImageRef(f"im{i}", str(p), content=f"{i:064x}") for i, p in enumerate(paths))
    backend = BackendConfig("clip", str(tmp_path / "clip"))
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    roles = EngineRoles(engine)
    plain = RoleConfig(backend, PromptConfig("generic/captioner"))
    captions = roles.caption(plain, images).value
    assert all(isinstance(c, str) and "background" in c for c in captions.values)
    assert all(m.startswith("clip-substitute:") for m in captions.models)
    verdicts = roles.verify(RoleConfig(backend, PromptConfig("generic/verifier")), images, ("is there a red circle?",) * 3).value
    assert all(0.0 <= p <= 1.0 for p in verdicts.probabilities)
    evals = roles.evaluate(RoleConfig(backend, PromptConfig("generic/evaluator")), images, images[::-1], ("make it blue",) * 3)
    p = evals.value.probabilities
    assert p[1] == pytest.approx(0.5, abs=1e-6), "a candidate identical to the reference shows no change"
    assert p[0] + p[2] == pytest.approx(1.0, abs=1e-5), "swapping reference and candidate flips the margin"
    osr = roles.reason_about_image(RoleConfig(backend, PromptConfig("generic/multimodal_reasoner")), images,
                                   ("make it blue",) * 3, fallbacks="fallback").value
    assert all(v["Target Image Description"].endswith("make it blue") for v in osr.values)
    identity = next(s for s in engine.steps if s.step == "captioner/backend")
    assert engine.store.get_value(identity.output).substitute is True
    assert np.all(np.array(verdicts.ok))
