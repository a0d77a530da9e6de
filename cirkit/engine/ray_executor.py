"""A Ray executor for item-mapping stages (the ``ray`` extra).

The driver resolves the cache and ships only the missing shards; each Ray task computes one shard and
writes it to the shared store itself (content, then its shard file); the driver assembles the output and
publishes the stage's record last, as the local executor does. The store must be reachable from every
worker (a shared filesystem or an object store URL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["RayExecutor"]


class RayExecutor:
    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_in_flight: int = 64) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray executor needs the ray extra: pip install 'cirkit[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        self.max_in_flight = max_in_flight

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield (task index, result) as tasks finish, keeping at most ``max_in_flight`` submitted."""
        remote = self.ray.remote(fn)
        pending: dict[Any, int] = {}
        queue = list(enumerate(tasks))
        while queue or pending:
            while queue and len(pending) < self.max_in_flight:
                i, task = queue.pop(0)
                pending[remote.remote(task)] = i
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), self.ray.get(ref)
