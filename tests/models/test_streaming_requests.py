"""The chat stage against a scripted real HTTP server on 127.0.0.1: ``max_in_flight`` requests stay outstanding
from the first request of a step to its last (no idle gap where a shard of answers ends), and an interrupted run
keeps every answer that came back, so the rerun asks the server only for the rest (counted on the server)."""

import _thread
import signal
import threading

import pytest
from fake_servers import Scripted

from cirkit.engine import Engine, Store
from cirkit.models.config import BackendConfig, BackendError
from cirkit.models.requests import ChatRequest, Decoding, Message
from cirkit.models.stages import chat, release_backends, resolve_backend


def requests(n):
    return tuple(ChatRequest("reasoner", "t", "h", (Message("user", f"question {i}"),), decoding=Decoding(max_tokens=4))
                 for i in range(n))


def answer(body):
    text = body["messages"][0]["content"].replace("question", "answer")
    return {"model": "scripted", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}


def run_chat(store, url, n, in_flight):
    config = BackendConfig("openai", "m", base_url=url, max_in_flight=in_flight, retries=0, timeout=120)
    engine = Engine(store, progress=False)
    identity = engine.run(resolve_backend, config, folder=None)
    return engine, engine.run(chat, config, requests=requests(n), backend=identity)


@pytest.fixture(autouse=True)
def fresh_backends():
    release_backends()  # each test's backend config points at its own server
    yield
    release_backends()


class Gate:
    """Holds every request until ``width`` are open at once (or all ``total`` have arrived), then answers the
    oldest. A client that keeps ``width`` in flight refills the gap at once; one that waits for a shard to end
    leaves it open, and the guard timeout (a deadlock guard, not a measurement) releases the request anyway,
    recording how many were open."""

    def __init__(self, width, total):
        self.width, self.total, self.arrived, self.open, self.open_at_release = width, total, 0, [], []
        self.cv = threading.Condition()

    def script(self, n, body):
        with self.cv:
            self.arrived += 1
            self.open.append(n)
            self.cv.notify_all()
            self.cv.wait_for(lambda: self.open[0] == n and (len(self.open) == self.width or self.arrived == self.total),
                             timeout=20)
            if self.arrived < self.total:
                self.open_at_release.append(len(self.open))
            self.open.remove(n)
            self.cv.notify_all()
        return 200, answer(body), {}


def test_requests_stay_in_flight_across_shard_boundaries(tmp_path):
    gate = Gate(width=4, total=40)  # the chat stage stores answers in shards of 16
    server = Scripted(gate.script)
    try:
        _, out = run_chat(Store(str(tmp_path)), server.url, 40, in_flight=4)
        assert [r.text for r in out.value] == [f"answer {i}" for i in range(40)]
    finally:
        server.close()
    assert len(gate.open_at_release) >= 36
    assert set(gate.open_at_release) == {4}, "a request was answered while fewer than max_in_flight were open"


def test_an_interrupted_run_keeps_its_answers_and_the_rerun_asks_only_for_the_rest(tmp_path):
    def interrupting(n, body):
        if n == 30:
            _thread.interrupt_main()  # Ctrl-C while 30 requests have been sent and at most 4 are unanswered
        return 200, answer(body), {}

    store = Store(str(tmp_path))
    first = Scripted(interrupting)
    # interrupt_main simulates SIGINT, which does nothing where SIGINT is ignored (a job started in the background
    # by a non-interactive shell, as CI may be): give this test Python's own Ctrl-C handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_chat(store, first.url, 50, in_flight=4)
    finally:
        signal.signal(signal.SIGINT, previous)
        first.close()
    release_backends()
    second = Scripted(lambda n, body: (200, answer(body), {}))
    try:
        engine, out = run_chat(store, second.url, 50, in_flight=4)
    finally:
        second.close()
    kept = engine.steps[-1].items_cached
    assert kept >= 30 - 4, "answers that came back before the interrupt were stored"
    asked = [b["messages"][0]["content"] for b in second.bodies]
    assert len(asked) == len(set(asked)) == 50 - kept, "the rerun asked exactly for the requests without an answer"
    assert [r.text for r in out.value] == [f"answer {i}" for i in range(50)]


def test_a_server_that_is_gone_stops_the_step_instead_of_failing_every_request(tmp_path):
    server = Scripted(lambda n, body: (200, answer(body), {}) if n < 5 else (500, {"error": "gone"}, {}))
    try:
        with pytest.raises(BackendError, match="HTTP 500"):
            run_chat(Store(str(tmp_path)), server.url, 200, in_flight=4)
        asked = len(server.bodies)
    finally:
        server.close()
    assert asked <= 5 + 16 + 4, "after 16 failures in a row nothing new is sent (those in flight finish)"
