"""``BackendConfig.threads`` for the local transformers backend: torch's intra-op thread count while a batch is
generated, restored afterwards (torch has one count per process, so one backend changes it at a time).

A wrapper around the backend, not part of it: the backend's code is in every answer's key (what decides the
answers), and how many threads compute them is a delivery setting, like ``batch_size``. Different thread counts
can round matrix products differently, so, as with batching, a near tie in greedy decoding could in principle
go the other way; the tests see identical answers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["ThreadLimited"]

_LOCK = threading.Lock()


@contextlib.contextmanager
def _threads(torch, n: int):
    with _LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class ThreadLimited:
    """``backend`` (a ``TransformersBackend``) whose generation runs with ``n`` torch threads."""

    def __init__(self, backend, n: int) -> None:
        self.backend, self.n = backend, n

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def stream(self, requests: list) -> Iterator[tuple]:
        answers = iter(self.backend.stream(requests))
        while True:
            with _threads(self.backend.torch, self.n):  # the batch is generated inside this next()
                item = next(answers, None)
            if item is None:
                return
            yield item

    def complete(self, requests: list) -> list:
        with _threads(self.backend.torch, self.n):
            return self.backend.complete(requests)
