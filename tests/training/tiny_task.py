"""A tiny contrastive task for the trainer's tests: two linear towers matching noisy pairs of vectors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cirkit.training import ArraySource, info_nce


@dataclasses.dataclass(frozen=True)
class TinyTask:
    dim: int = 8
    out: int = 4
    frozen_query: bool = False  # the query tower as a frozen "pretrained base"

    def init(self, rng):
        kq, kt = jax.random.split(rng)
        return {"query": {"w": jax.random.normal(kq, (self.dim, self.out)) * 0.3},
                "target": {"w": jax.random.normal(kt, (self.dim, self.out)) * 0.3},
                "log_scale": jnp.asarray(np.log(10.0), jnp.float32)}

    def trainable(self, params):
        return {"query": {"w": not self.frozen_query}, "target": {"w": True}, "log_scale": True}

    def loss(self, params, batch, rng):
        q = (batch["x"].astype(jnp.float32) / 255) @ params["query"]["w"]
        t = batch["y"] @ params["target"]["w"]
        t = t + 1e-3 * jax.random.normal(rng, t.shape)  # uses the step's randomness, so resume must restore it
        loss = info_nce(q, t, params["log_scale"])
        return loss, {"scale": jnp.exp(params["log_scale"])}


class CountingSource(ArraySource):
    """An array source that records every index it is asked to read."""

    def __init__(self, fields):
        super().__init__(fields)
        self.reads: list[np.ndarray] = []

    def batch(self, indices):
        self.reads.append(np.array(indices))
        return super().batch(indices)


def tiny_data(n: int = 96, dim: int = 8, seed: int = 0) -> CountingSource:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, dim)).astype(np.uint8)
    y = (x.astype(np.float32) / 255) @ rng.standard_normal((dim, dim)).astype(np.float32)
    return CountingSource({"x": x, "y": y.astype(np.float32)})
