"""Image files -> preprocessed pixel batches on a pool of threads, prefetched while the encoder runs.

Pillow releases the GIL while it decodes, resizes and converts, and so does the jitted encoder while it
computes, so threads overlap decoding with each other and with encoding without copying pixels between
processes. Batches come out in input order; at most ``prefetch`` batches are decoded ahead of the consumer,
which bounds memory. A file that cannot be read raises the same ``ImageDecodeError`` naming it as the serial
path, and the work still queued is cancelled.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .clip_image import ImagePrep, open_image, preprocess

__all__ = ["pixel_batches", "default_workers", "load_pixels"]


def default_workers() -> int:
    """One decoding thread per core, at most 8 (beyond that, JPEG decoding is rarely the bottleneck)."""
    return max(1, min(8, os.cpu_count() or 1))


def load_pixels(path: str, box, prep: ImagePrep) -> np.ndarray:
    """One file -> float32 (3, crop, crop), exactly as the serial path computes it."""
    return preprocess(open_image(path, box), prep)


def pixel_batches(paths: Sequence[str], boxes: Sequence | None, prep: ImagePrep, batch_size: int,
                  workers: int = 0, prefetch: int = 2) -> Iterator[np.ndarray]:
    """Yield (n, 3, crop, crop) float32 batches of ``batch_size`` images (the last may be shorter), in order.

    ``workers`` 0 means :func:`default_workers`; 1 decodes in the calling thread (no pool)."""
    boxes = list(boxes) if boxes is not None else [None] * len(paths)
    if len(boxes) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(boxes)} crop boxes")
    starts = range(0, len(paths), max(1, batch_size))
    workers = workers or default_workers()
    if workers == 1:
        for s in starts:
            yield np.stack([load_pixels(p, b, prep) for p, b in zip(paths[s : s + batch_size], boxes[s : s + batch_size])])
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="cirkit-decode")
    pending: deque[list[Future]] = deque()
    todo = iter(starts)

    def submit_next() -> None:
        s = next(todo, None)
        if s is not None:
            pending.append([pool.submit(load_pixels, p, b, prep)
                            for p, b in zip(paths[s : s + batch_size], boxes[s : s + batch_size])])

    try:
        for _ in range(max(1, prefetch)):
            submit_next()
        while pending:
            batch = pending.popleft()
            pixels = np.stack([f.result() for f in batch])
            submit_next()
            yield pixels
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
