"""Who answers: the backend identity that enters every model call's key must be stable and exact."""

import pytest
from conftest import free_port

from cirkit.models.backends.openai_compat import list_models, server_snapshot
from cirkit.models.config import BackendConfig, BackendError
from cirkit.models.stages import resolve_backend


def entry(model_id, created, **extra):
    return {"id": model_id, "object": "model", "created": created, "owned_by": "vllm", **extra}


@pytest.mark.parametrize("served", ["/models/smol", "/models/smol@main"])
def test_snapshot_accepts_both_id_formats_and_ignores_request_time(served):
    """`transformers serve` has listed ids with and without ``@main``; vLLM stamps ``created`` per request."""
    first = server_snapshot("/models/smol", [entry("other", 1), entry(served, 1_700_000_000, root="/w")])
    again = server_snapshot("/models/smol", [entry(served, 1_700_000_999, root="/w"), entry("other", 5)])
    assert first == again, "the request time must not enter the key"
    assert f"id={served}" in first and "root=/w" in first


def test_snapshot_changes_with_what_is_served():
    a = server_snapshot("m", [entry("m", 1, root="/weights/v1", max_model_len=2048)])
    b = server_snapshot("m", [entry("m", 1, root="/weights/v2", max_model_len=2048)])
    c = server_snapshot("m", [entry("m", 1, root="/weights/v1", max_model_len=4096)])
    assert len({a, b, c}) == 3


def test_exact_id_wins_over_a_revision_match():
    snap = server_snapshot("m@v2", [entry("m@v1", 1, root="/one"), entry("m@v2", 1, root="/two")])
    assert "root=/two" in snap


def test_a_model_the_server_does_not_list_is_an_error():
    with pytest.raises(BackendError, match="does not serve model 'llava'.*serves: m"):
        server_snapshot("llava", [entry("m", 1)])


def served_entry(model_id, loaded=True):
    """A `transformers serve` entry: id and owner derived from the requested name, and a load status."""
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "models",
            "status": {"value": "loaded" if loaded else "unloaded"}}


def test_a_server_that_loads_on_request_gives_one_key_whatever_it_has_loaded():
    """An unpinned `transformers serve` lists a local folder only once a request has loaded it: the key must not
    depend on that, and a folder it does not list yet is not refused."""
    cold = server_snapshot("/models/llava", [served_entry("HuggingFaceTB/SmolLM2", loaded=False)])
    warm = server_snapshot("/models/llava", [served_entry("HuggingFaceTB/SmolLM2"), served_entry("/models/llava")])
    assert cold == warm == server_snapshot("/models/llava", [])
    vllm = server_snapshot("/models/llava", [entry("/models/llava", 1, root="/models/llava", max_model_len=4096)])
    assert vllm == "id=/models/llava;root=/models/llava;owned_by=vllm;max_model_len=4096", "vLLM's keys are unchanged"


def test_a_server_without_load_status_keeps_its_name_only_entry_in_the_key():
    """Hosted APIs, Ollama, llama.cpp: an entry with only id and owner still tells two servers' models apart."""
    hosted = server_snapshot("gpt-4o-mini", [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"}])
    local = server_snapshot("gpt-4o-mini", [{"id": "gpt-4o-mini", "object": "model", "created": 2, "owned_by": "library"}])
    assert hosted == "id=gpt-4o-mini;owned_by=system" and local != hosted


def test_unreachable_server_fails_unless_the_snapshot_is_pinned():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match="cannot ask the server"):
        list_models(BackendConfig("openai", "m", base_url=url, timeout=2))
    pinned = resolve_backend.fn(BackendConfig("openai", "m", snapshot="2026-11-01", base_url=url), None)
    assert pinned.snapshot == "2026-11-01"
