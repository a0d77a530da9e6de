"""KV-cached greedy generation over a left-padded batch, compiled once per (batch, prompt bucket, length).

Prompts are left-padded to a bucket length (a multiple of 16) so nearby lengths share one compilation;
positions count real tokens only (``cumsum(mask) - 1``), so padding changes nothing. One prefill writes the
prompt into the cache, then a ``while_loop`` feeds one token per step until every sequence has produced an
end token or ``max_new_tokens`` are out; a finished sequence emits the pad id from then on. With several
devices the batch is split over them and the parameters replicated (see ``sharding.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .config import LMConfig
from .model import embed_tokens, empty_cache, forward, positions_from_mask, prepend_soft_prompt
from .sharding import placement

__all__ = ["greedy_generate", "pad_left", "positions_from_mask"]

BUCKET = 16


def pad_left(prompts: list[list[int]], pad_id: int, bucket: int = BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and mask ``[batch, length]`` with each prompt right-aligned; length rounded up to ``bucket``."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    length = -(-max(len(p) for p in prompts) // bucket) * bucket
    tokens = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), np.int32)
    for row, prompt in enumerate(prompts):
        tokens[row, length - len(prompt):] = prompt
        mask[row, length - len(prompt):] = 1
    return tokens, mask


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "eos_ids", "pad_id", "dtype", "lora_scale",
                                             "keep_logits"))
def _generate(params, tokens, mask, soft_prompt, lora, *, config: LMConfig, max_new_tokens: int,
              eos_ids: tuple[int, ...], pad_id: int, dtype, lora_scale: float, keep_logits: bool):
    embeds = embed_tokens(params, tokens, dtype)
    if soft_prompt is not None:
        embeds, mask = prepend_soft_prompt(embeds, mask, soft_prompt)
    b, t = mask.shape
    key_mask = jnp.concatenate([mask, jnp.ones((b, max_new_tokens), mask.dtype)], axis=1)
    positions = positions_from_mask(mask)
    run = functools.partial(forward, params, config, key_mask=key_mask, lora=lora, lora_scale=lora_scale,
                            logits="last")
    out = run(embeds, positions, cache=empty_cache(config, b, t + max_new_tokens, dtype), cache_index=0)
    eos = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)

    def step(state):
        i, logits, cache, done, generated, history = state
        token = jnp.where(done, pad_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        generated = generated.at[:, i].set(token)
        if keep_logits:
            history = history.at[:, i].set(jnp.where(done[:, None], 0.0, logits.astype(jnp.float32)))
        done = done | jnp.isin(token, eos)
        nxt = run(embed_tokens(params, token[:, None], dtype), positions[:, -1:] + 1 + i, cache=cache,
                  cache_index=t + i)
        return i + 1, nxt.logits, nxt.cache, done, generated, history

    def more(state):
        i, done = state[0], state[3]
        return (i < max_new_tokens) & ~jnp.all(done)

    generated = jnp.full((b, max_new_tokens), pad_id, jnp.int32)
    history = jnp.zeros((b, max_new_tokens, config.vocab_size) if keep_logits else (0,), jnp.float32)
    state = (0, out.logits, out.cache, jnp.zeros((b,), bool), generated, history)
    return lax.while_loop(more, step, state)[-2:]


def greedy_generate(params, config: LMConfig, prompts: list[list[int]], max_new_tokens: int, *,
                    dtype=jnp.float32, soft_prompt=None, lora=None, lora_scale: float = 1.0,
                    eos_ids: tuple[int, ...] | None = None, pad_id: int | None = None, return_logits: bool = False,
                    devices=None):
    """Greedy continuations of token-id ``prompts`` (each cut after its first end token).

    With ``return_logits`` also the float32 logits each token was chosen from, ``[batch, max_new_tokens, vocab]``
    (zeros after a sequence ended). ``devices``: where to run (default every device: batch data-parallel).
    """
    eos = tuple(config.eos_token_ids if eos_ids is None else eos_ids)
    pad = pad_id if pad_id is not None else (config.pad_token_id if config.pad_token_id is not None
                                             else (eos[0] if eos else 0))
    tokens, mask = pad_left(prompts, pad)
    place = placement(devices)
    out, logits = _generate(place.replicate(params), place.split(tokens), place.split(mask), place.replicate(soft_prompt),
                            place.replicate(lora), config=config, max_new_tokens=max_new_tokens, eos_ids=eos,
                            pad_id=pad, dtype=jnp.dtype(dtype), lora_scale=float(lora_scale), keep_logits=return_logits)
    rows = len(prompts)
    results = []
    for row in np.asarray(out)[:rows]:
        seq = []
        for token in row.tolist():
            seq.append(token)
            if token in eos:
                break
        results.append(seq)
    return (results, np.asarray(logits)[:rows]) if return_logits else results
