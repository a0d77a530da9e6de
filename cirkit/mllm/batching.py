"""Texts to left-padded token arrays in a few fixed widths (so each width compiles once)."""

from __future__ import annotations

import numpy as np

__all__ = ["pad_rows", "WIDTHS"]

WIDTHS = (8, 16, 32, 64, 128, 256)


def pad_rows(rows: list[list[int]], pad_id: int, max_tokens: int,
             width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row cut to its first ``max_tokens`` ids and right-aligned in ``width`` columns (default: the smallest
    of ``WIDTHS`` that holds them all)."""
    rows = [list(r)[:max_tokens] for r in rows]
    longest = max((len(r) for r in rows), default=0)
    if width is None:
        width = next((w for w in WIDTHS if w >= longest), longest)
    tokens = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        if r:
            tokens[i, width - len(r):] = r
            mask[i, width - len(r):] = 1
    return tokens, mask
