"""The CLIP training step as cirkit first wrote it, kept as the reference of ``train_bench.py``.

The towers are the pre-trainer ``ClipText``/``ClipVision`` (every position runs through every layer; pixels
are normalised float32 (B, 3, H, W) cut into patches on the device), the loop the pre-trainer ``train_clip``
loop: one jitted step per dispatch, the batch gathered and copied from the host, ``float(loss)`` every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from cirkit.encoders.clip_image import OPENAI_MEAN, OPENAI_STD
from cirkit.encoders.clip_model import Encoder

__all__ = ["OriginalText", "OriginalVision", "original_loop"]


class OriginalText(nn.Module):
    config: object

    @nn.compact
    def __call__(self, input_ids):
        cfg = self.config.text
        tok = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="token_embedding")(input_ids)
        pos = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size, name="position_embedding")(
            jnp.arange(input_ids.shape[1])[None])
        t = input_ids.shape[1]
        causal = jnp.where(jnp.tril(jnp.ones((t, t), bool)), 0.0, -jnp.inf)[None, None]
        x = Encoder(cfg, jnp.float32, name="encoder")(tok + pos, causal)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="final_layer_norm")(x)
        eos = jnp.argmax((input_ids == cfg.eos_token_id).astype(jnp.int32), axis=-1)
        pooled = x[jnp.arange(x.shape[0]), eos]
        return nn.Dense(self.config.projection_dim, use_bias=False, name="text_projection")(pooled)


class OriginalVision(nn.Module):
    config: object

    @nn.compact
    def __call__(self, pixels):
        cfg = self.config.vision
        p, d = cfg.patch_size, cfg.hidden_size
        b, c, hgt, wid = pixels.shape
        patches = pixels.reshape(b, c, hgt // p, p, wid // p, p).transpose(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(b, (hgt // p) * (wid // p), c * p * p)
        kernel = self.param("patch_embedding", nn.initializers.normal(0.02), (d, c, p, p))
        x = jnp.einsum("bnk,dk->bnd", patches, kernel.reshape(d, -1))
        cls = self.param("class_embedding", nn.initializers.normal(0.02), (d,))
        x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, d)), x], axis=1)
        n_pos = (cfg.image_size // p) ** 2 + 1
        x = x + nn.Embed(n_pos, d, name="position_embedding")(jnp.arange(n_pos)[None])
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="pre_layrnorm")(x)
        x = Encoder(cfg, jnp.float32, name="encoder")(x, None)
        pooled = nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="post_layernorm")(x[:, 0])
        return nn.Dense(self.config.projection_dim, use_bias=False, name="visual_projection")(pooled)


def original_loop(cfg, config, images: np.ndarray, ids: np.ndarray):
    """``run(steps)``: ``steps`` more steps of the original loop (compiled on the first call)."""
    x = (images.astype(np.float64) * (1 / 255)).astype(np.float32).transpose(0, 3, 1, 2)
    pixels = (x - np.asarray(OPENAI_MEAN, np.float32)[:, None, None]) / np.asarray(OPENAI_STD, np.float32)[:, None, None]
    text, vision = OriginalText(config), OriginalVision(config)
    k1, k2, _ = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
    params = {"text": text.init(k1, jnp.asarray(ids[:1]))["params"],
              "vision": vision.init(k2, jnp.asarray(pixels[:1]))["params"],
              "logit_scale": jnp.asarray(np.log(1 / 0.07), jnp.float32)}
    optimiser = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps, 1000),
                            weight_decay=cfg.weight_decay)
    state = {"params": params, "opt": optimiser.init(params), "rng": np.random.default_rng(cfg.seed)}

    def loss_fn(p, batch_ids, batch_pixels):
        t = text.apply({"params": p["text"]}, batch_ids)
        v = vision.apply({"params": p["vision"]}, batch_pixels)
        t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
        v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
        logits = jnp.exp(jnp.minimum(p["logit_scale"], np.log(100.0))) * v @ t.T
        labels = jnp.arange(len(batch_ids))
        return (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()) / 2

    @jax.jit
    def step(p, s, batch_ids, batch_pixels):
        loss, grads = jax.value_and_grad(loss_fn)(p, batch_ids, batch_pixels)
        updates, s = optimiser.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    def run(steps: int) -> list[float]:
        losses = []
        for _ in range(steps):
            idx = state["rng"].permutation(len(ids))[: cfg.batch_size]
            state["params"], state["opt"], loss = step(state["params"], state["opt"], jnp.asarray(ids[idx]),
                                                       jnp.asarray(pixels[idx]))
            losses.append(float(loss))
        return losses

    return run
