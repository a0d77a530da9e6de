"""What a trained method supplies to the generic trainer: parameters, which of them train, and a loss."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Task", "trainable_mask", "evaluate", "prepare"]


@runtime_checkable
class Task(Protocol):
    """A trainable model and its objective, all pure functions of their arguments.

    - ``init(rng) -> params``: a nested dict of arrays (str keys). Frozen parts (a pretrained base) come back
      the same every call; they are passed to the step as constants and never enter optimiser state or
      checkpoints.
    - ``loss(params, batch, rng) -> (loss, aux)``: a scalar and a dict of scalar metrics, traced under jit;
      ``batch`` is one micro-batch as the data source returned it (normalise pixels etc. in here, on device).

    Optional: ``prepare(batch) -> batch`` (host-side, NumPy: reshape what the data source read into the layout
    the step wants; it runs while the device computes the previous dispatch), ``trainable(params) -> mask`` (a pytree of bools like ``params``; default: everything trains)
    and ``evaluate(params) -> dict[str, float]`` (called every ``eval_every`` steps, recorded in checkpoints).
    """

    def init(self, rng: Any) -> dict: ...

    def loss(self, params: dict, batch: dict, rng: Any) -> tuple[Any, dict]: ...


def trainable_mask(task: Task, params: dict) -> Any:
    fn = getattr(task, "trainable", None)
    if fn is None:
        import jax

        return jax.tree_util.tree_map(lambda _: True, params)
    return fn(params)


def evaluate(task: Task, params: dict) -> dict[str, float] | None:
    fn = getattr(task, "evaluate", None)
    return None if fn is None else {str(k): float(v) for k, v in fn(params).items()}


def prepare(task: Task, batch: dict) -> dict:
    fn = getattr(task, "prepare", None)
    return batch if fn is None else fn(batch)
