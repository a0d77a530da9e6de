"""A small CLIP trained contrastively (symmetric InfoNCE, learnable temperature) with JAX and optax.

The model is the same Flax architecture that loads real checkpoints; the result is written in the Hugging
Face ``CLIPModel`` layout (config, safetensors, tokenizer, preprocessor files) so the same loader reads it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageDraw

from .. import config_checks as checks
from ..encoders.clip_config import ClipConfig, TowerConfig
from ..encoders.clip_image import OPENAI_MEAN, OPENAI_STD
from ..encoders.clip_model import ClipText, ClipVision
from ..encoders.clip_weights import flatten_params, hf_name
from .vocab import build_vocab, tokenizer_files

__all__ = ["TrainConfig", "train_clip", "clip_model_config"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    width: int = 64
    layers: int = 2
    heads: int = 4
    patch_size: int = 16
    context_length: int = 32
    projection_dim: int = 128
    act: str = "quick_gelu"

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "steps", "batch_size", "width", "layers", "heads", "patch_size",
                                 "context_length", "projection_dim")
        checks.integers_at_least(self, 0, "warmup_steps")
        checks.numbers_at_least(self, 0, "learning_rate", strict=True)
        checks.numbers_at_least(self, 0, "weight_decay")
        if self.width % self.heads:
            checks.fail(self, "heads", f"a divisor of width = {self.width}", self.heads)


def clip_model_config(cfg: TrainConfig, vocab_size: int, image_size: int) -> ClipConfig:
    tower = dict(hidden_size=cfg.width, intermediate_size=4 * cfg.width, num_attention_heads=cfg.heads,
                 num_hidden_layers=cfg.layers, hidden_act=cfg.act, layer_norm_eps=1e-5)
    text = TowerConfig(**tower, vocab_size=vocab_size, max_position_embeddings=cfg.context_length,
                       eos_token_id=vocab_size - 1)
    vision = TowerConfig(**tower, image_size=image_size, patch_size=cfg.patch_size)
    return ClipConfig(text, vision, cfg.projection_dim)


def _tokenize(directory_files: dict[str, bytes], captions: list[str], context: int) -> np.ndarray:
    import tempfile

    from ..encoders.clip_text import ClipTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in directory_files.items():
            with open(f"{tmp}/{name}", "wb") as f:
                f.write(data)
        return ClipTokenizer(tmp, context)(captions)


def _normalise_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> CLIP-normalised float32 (N, 3, H, W), as the encoder's preprocessing does."""
    x = (images.astype(np.float64) * (1 / 255)).astype(np.float32).transpose(0, 3, 1, 2)
    return (x - np.asarray(OPENAI_MEAN, np.float32)[:, None, None]) / np.asarray(OPENAI_STD, np.float32)[:, None, None]


def train_clip(cfg: TrainConfig, images: np.ndarray, captions: list[str], progress=None) -> tuple[dict[str, bytes], dict]:
    """Train on (uint8 image, caption) pairs; return the checkpoint's files and a training log."""
    tok_files = tokenizer_files(captions)
    vocab_size = len(build_vocab(captions)[0])
    config = clip_model_config(cfg, vocab_size, images.shape[1])
    ids = _tokenize(tok_files, captions, cfg.context_length)
    pixels = _normalise_pixels(images)
    text, vision = ClipText(config), ClipVision(config)
    key = jax.random.PRNGKey(cfg.seed)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"text": text.init(k1, jnp.asarray(ids[:1]))["params"],
              "vision": vision.init(k2, jnp.asarray(pixels[:1]))["params"],
              "logit_scale": jnp.asarray(np.log(1 / 0.07), jnp.float32)}
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps, max(cfg.steps, cfg.warmup_steps + 1))
    optimiser = optax.adamw(schedule, weight_decay=cfg.weight_decay)
    state = optimiser.init(params)

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

    rng = np.random.default_rng(cfg.seed)
    n = len(ids)
    bs = min(cfg.batch_size, n)
    losses = []
    start = time.perf_counter()
    order = rng.permutation(n)
    pos = 0
    for _ in range(cfg.steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos : pos + bs]
        pos += bs
        params, state, loss = step(params, state, jnp.asarray(ids[idx]), jnp.asarray(pixels[idx]))
        losses.append(float(loss))
        if progress:
            progress(1)
    seconds = time.perf_counter() - start
    log = {"losses": losses, "seconds": seconds, "steps": cfg.steps, "batch_size": bs, "pairs": n,
           "logit_scale": float(params["logit_scale"])}
    files = dict(tok_files)
    files.update(_hf_files(config, params, images.shape[1]))
    files["training_log.json"] = json.dumps(log).encode()
    files["loss_curve.png"] = loss_curve_png(losses)
    return files, log


def _hf_files(config: ClipConfig, params: dict, image_size: int) -> dict[str, bytes]:
    """config.json, model.safetensors and preprocessor_config.json in the Hugging Face CLIPModel layout."""
    from safetensors.numpy import save

    tensors = {"logit_scale": np.asarray(params["logit_scale"], np.float32)}
    for tower in ("text", "vision"):
        for path, value in flatten_params(jax.device_get(params[tower])).items():
            arr = np.asarray(value, np.float32)
            tensors[hf_name(tower, path)] = np.ascontiguousarray(arr.T if path[-1] == "kernel" else arr)
    t, v = config.text, config.vision
    tower = lambda c: {"hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,  # noqa: E731
                       "num_attention_heads": c.num_attention_heads, "num_hidden_layers": c.num_hidden_layers,
                       "hidden_act": c.hidden_act, "layer_norm_eps": c.layer_norm_eps}
    hf_config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": config.projection_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {**tower(t), "vocab_size": t.vocab_size, "max_position_embeddings": t.max_position_embeddings,
                        "eos_token_id": t.eos_token_id, "bos_token_id": t.vocab_size - 2, "pad_token_id": t.eos_token_id},
        "vision_config": {**tower(v), "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": 3},
    }
    preprocessor = {"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": image_size},
                    "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
                    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                    "image_mean": list(OPENAI_MEAN), "image_std": list(OPENAI_STD), "resample": 3}
    return {"config.json": json.dumps(hf_config, indent=2).encode(), "model.safetensors": save(tensors),
            "preprocessor_config.json": json.dumps(preprocessor, indent=2).encode()}


def loss_curve_png(losses: list[float], width: int = 480, height: int = 240) -> bytes:
    """A plain line plot of the training loss (Pillow only)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 40, width - 10, 20, height - 25
    draw.rectangle((left, top, right, bottom), outline="black")
    if losses:
        hi, lo = max(losses), min(losses)
        span = (hi - lo) or 1.0
        pts = [(left + (right - left) * i / max(1, len(losses) - 1), bottom - (bottom - top) * (v - lo) / span)
               for i, v in enumerate(losses)]
        draw.line(pts, fill=(30, 90, 200), width=2)
        draw.text((left, 4), f"training loss: {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps", fill="black")
        draw.text((4, top), f"{hi:.2f}", fill="black")
        draw.text((4, bottom - 10), f"{lo:.2f}", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
