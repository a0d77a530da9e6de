"""Local generation batches over a whole step: grouped by prompt length (dynamic padding stays small), never
mixing decodings, within the batch size and an optional token budget."""

import pytest

from cirkit.engine import Engine, Store
from cirkit.models.batching import plan_batches
from cirkit.models.config import BackendConfig
from cirkit.models.requests import ChatRequest, Decoding, Message
from cirkit.models.stages import chat, make_backend, release_backends, resolve_backend


def request(text, **decoding):
    return ChatRequest("reasoner", "t", "h", (Message("user", text),), decoding=Decoding(**decoding))


def test_batches_group_similar_lengths_and_never_mix_decodings():
    requests = [request(f"q{i}", max_tokens=8 if i % 3 else 4) for i in range(9)]
    lengths = [50, 3, 40, 7, 9, 1, 30, 2, 8]
    batches = plan_batches(requests, lengths, batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert all(len({requests[i].decoding for i in b}) == 1 and len(b) <= 2 for b in batches)
    # max_tokens=8: positions 1, 2, 4, 5, 7, 8 (lengths 3, 40, 9, 1, 2, 8) -> shortest first, in pairs
    assert [b for b in batches if requests[b[0]].decoding.max_tokens == 8] == [[5, 7], [1, 8], [4, 2]]
    assert [b for b in batches if requests[b[0]].decoding.max_tokens == 4] == [[3, 6], [0]]


def test_a_token_budget_closes_a_batch_before_its_padded_size_exceeds_it():
    requests = [request(f"q{i}", max_tokens=5) for i in range(5)]  # padded size: n x (longest prompt + 5 new)
    assert plan_batches(requests, [10, 10, 10, 30, 200], batch_size=8, token_budget=60) == [[0, 1, 2], [3], [4]]
    assert plan_batches(requests, [10, 10, 10, 30, 200], batch_size=8, token_budget=44) == [[0, 1], [2], [3], [4]]


@pytest.fixture
def fresh_backends():
    release_backends()
    yield
    release_backends()


def test_the_local_backend_batches_across_shards_with_dynamic_padding(smollm2_folder, tmp_path, fresh_backends):
    config = BackendConfig("transformers", smollm2_folder, batch_size=10)
    engine = Engine(Store(str(tmp_path)), progress=False)
    identity = engine.run(resolve_backend, config, folder=None)
    live = make_backend(config, identity.value.location)
    shapes, generate = [], live.model.generate

    def spy(**kwargs):  # a spy on the real model: it still generates
        shapes.append(tuple(kwargs["input_ids"].shape))
        return generate(**kwargs)

    live.model.generate = spy
    long = "Describe in one word the colour of the large red bus parked beside the old stone bridge today:"
    requests = tuple(request(f"{long} {i}" if i % 2 else f"Say {i}.", max_tokens=2) for i in range(20))
    out = engine.run(chat, config, requests=requests, backend=identity).value
    assert len(out) == 20 and all(r.model == live.name for r in out)
    assert [b for b, _ in shapes] == [10, 10], "one batch of 10 across the chat stage's shards of 16"
    assert shapes[0][1] < shapes[1][1], "the short prompts share a batch, padded to their own length"
