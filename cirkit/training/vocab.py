"""A byte-level BPE vocabulary in CLIP's format, built so that every word of a corpus is one token."""

from __future__ import annotations

import json
import re


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def build_vocab(texts: list[str]) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges): all byte symbols and their end-of-word forms, then left-to-right merges per word."""
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    seen = set(vocab)
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]", t.lower())})
    for word in words:
        if len(word) < 2:
            continue
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merged = left + right
            if merged not in seen:
                merges.append(f"{left} {right}")
                vocab.append(merged)
                seen.add(merged)
            left = merged
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def tokenizer_files(texts: list[str]) -> dict[str, bytes]:
    vocab, merges = build_vocab(texts)
    return {"vocab.json": json.dumps(vocab).encode(), "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()}
