"""The local transformers backend batches by tokens (bounded key/value cache and attention), shares one loaded
model per folder, and gives the same answers however the requests are batched."""

from __future__ import annotations

import pytest

from cirkit.models.batching import plan_batches
from cirkit.models.config import BackendConfig
from cirkit.models.requests import ChatRequest, Decoding, Message


def asking(new_tokens, n, **decoding):
    return [ChatRequest("reasoner", "t", "h", (Message("user", f"q{i}"),),
                        decoding=Decoding(max_tokens=new_tokens, **decoding)) for i in range(n)]


def test_batches_hold_at_most_the_token_budget_of_padded_prompt_and_new_tokens():
    lengths = [100, 30, 60, 10, 90]
    # sorted by length: 10 (3), 30 (1), 60 (2), 90 (4), 100 (0); each asks for 20 new tokens
    # [3, 1]: 2 * (30 + 20) = 100; adding 2 would need 3 * 80 = 240 > 200
    # [2, 4]: 2 * (90 + 20) = 220 > 200, so 2 alone; [4]: then 0 would need 2 * 120 > 200
    assert plan_batches(asking(20, 5), lengths, 8, 200) == [[3, 1], [2], [4], [0]]


def test_batches_hold_at_most_batch_size_items_and_one_decoding_group():
    lengths = [5, 5, 5, 5, 5]
    requests = [asking(1, 1, want_probability=p)[0] for p in (False, True, False, True, False)]
    assert plan_batches(requests, lengths, 2, 10_000) == [[0, 2], [4], [1, 3]]


def test_a_request_longer_than_the_budget_still_gets_a_batch_of_its_own():
    assert plan_batches(asking(16, 2), [5000, 10], 8, 100) == [[1], [0]]


def test_batch_tokens_is_a_positive_integer_and_not_in_the_key():
    from cirkit.engine import digest

    assert digest(BackendConfig("transformers", batch_tokens=64)) == digest(BackendConfig("transformers"))
    with pytest.raises(Exception, match="batch_tokens"):
        BackendConfig("transformers", batch_tokens=0)


QUESTIONS = ["Is red a colour? Answer Yes or No.", "Is a table a colour? Answer Yes or No.",
             "Describe, in a long and detailed paragraph, a red square on a blue background, its size, its "
             "position and what it might mean to someone who sees it for the first time.", "Name a fruit."]


def requests(want_probability=False, max_tokens=24):
    from cirkit.models.requests import ChatRequest, Message

    return [ChatRequest("reasoner", "t", "h", (Message("user", q),),
                        decoding=Decoding(max_tokens=max_tokens, want_probability=want_probability))
            for q in QUESTIONS]


def test_answers_are_the_same_one_by_one_and_batched_by_tokens(smollm2_folder):
    from cirkit.models.backends.local_transformers import TransformersBackend

    together = TransformersBackend(BackendConfig("transformers", smollm2_folder, batch_size=8, batch_tokens=10_000))
    alone = TransformersBackend(BackendConfig("transformers", smollm2_folder, batch_size=8, batch_tokens=1))
    assert alone.model is together.model, "one loaded model per folder, however many backends use it"
    answered = {}
    for reqs in (requests(), requests(want_probability=True, max_tokens=3)):
        a, b = together.complete(reqs), alone.complete(reqs)
        assert [r.text for r in a] == [r.text for r in b]
        assert [r.finish_reason for r in a] == [r.finish_reason for r in b]
        if reqs[0].decoding.want_probability:
            assert [r.yes_probability for r in a] == pytest.approx([r.yes_probability for r in b], abs=1e-4)
        answered[reqs[0].decoding.want_probability] = a
    short = answered[False]
    # the yes/no questions end well before 24 tokens, the paragraph does not: each row's own end is reported
    assert [r.finish_reason for r in short] == ["stop", "stop", "length", "stop"], [r.text for r in short]


def test_threads_sets_torchs_thread_count_while_generating_and_restores_it(smollm2_folder):
    import torch

    from cirkit.engine import digest
    from cirkit.models.stages import make_backend

    assert digest(BackendConfig("transformers", threads=1)) == digest(BackendConfig("transformers"))
    with pytest.raises(Exception, match="threads"):
        BackendConfig("transformers", threads=-1)
    # a wrapper around the backend, not its code: the code in every answer's key does not reach it
    from cirkit.engine.fingerprint import analyse
    from cirkit.models.stages import _answer_code

    reached = analyse(*_answer_code("transformers")).deps
    assert any("TransformersBackend" in name for name in reached) and not any("threads" in n.lower() for n in reached)
    backend = make_backend(BackendConfig("transformers", smollm2_folder, threads=1))
    plain = make_backend(BackendConfig("transformers", smollm2_folder))
    assert backend.model is plain.model, "one loaded model for both"
    seen = []
    hook = backend.model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not the machine's default, so a backend that ignored the setting would show 3
    try:
        streamed = [a.text for _, a in backend.stream(requests(max_tokens=2)[:2])]
        assert seen and set(seen) == {1}, seen
        assert torch.get_num_threads() == 3, "the process's own setting comes back after generation"
        seen.clear()
        assert [a.text for a in plain.complete(requests(max_tokens=2)[:2])] == streamed
        assert set(seen) == {3}, "without the setting torch's count is left alone"
    finally:
        hook.remove()
        torch.set_num_threads(before)
