"""Batches for a backend that generates in this process: requests that can share one ``generate`` call.

A batch is padded to its longest prompt, so requests are grouped by prompt length (shortest first) across
everything a step asks, not in arrival order within a shard: padding then costs little, and a step of a
thousand requests runs as full batches. Requests whose decoding differs (max tokens, P(yes), repetition
penalty) never share a batch, since one ``generate`` call takes one set of decoding options.
"""

from __future__ import annotations

from collections.abc import Sequence

from .requests import ChatRequest

__all__ = ["plan_batches"]


def plan_batches(requests: Sequence[ChatRequest], lengths: Sequence[int], batch_size: int,
                 token_budget: int | None = None) -> list[list[int]]:
    """Positions of ``requests`` grouped into batches of at most ``batch_size`` requests with the same
    decoding, in increasing prompt length (``lengths``, in tokens). With ``token_budget``, a batch also stops
    before its padded size — requests x (longest prompt + new tokens), what its key/value cache and attention
    hold — would exceed it; a single request always gets a batch, however long."""
    order = sorted(range(len(requests)), key=lambda i: (lengths[i], i))
    open_batches: dict[object, list[int]] = {}
    batches: list[list[int]] = []
    for i in order:
        decoding = requests[i].decoding
        batch = open_batches.setdefault(decoding, [])
        width = lengths[i] + decoding.max_tokens  # the longest so far: prompts come shortest first
        full = len(batch) >= batch_size or (token_budget is not None and batch and (len(batch) + 1) * width > token_budget)
        if full:
            batches.append(batch)
            batch = open_batches[decoding] = []
        batch.append(i)
    batches.extend(b for b in open_batches.values() if b)
    return batches
