"""A small CLIP trained contrastively (symmetric InfoNCE, learnable temperature) on the generic trainer.

The model is the same Flax architecture that loads real checkpoints; the result is written in the Hugging
Face ``CLIPModel`` layout (config, safetensors, tokenizer, preprocessor files) so the same loader reads it.
Pixels stay uint8 until the jitted step normalises them; token ids are cut to the longest caption (exact:
the text tower is causal and pools at the end-of-text token, so later positions never reach the output).
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from .. import config_checks as checks
from ..encoders.clip_config import ClipConfig, TowerConfig
from ..encoders.clip_image import OPENAI_MEAN, OPENAI_STD
from ..encoders.clip_model import ClipText, ClipVision, cut_patches
from ..encoders.clip_weights import flatten_params, hf_name
from ..encoders.mixed_matmul import MATMUL_DTYPES
from .checkpoint import Checkpoint
from .config import TrainerConfig
from .data import ArraySource
from .loop import full_params, train
from .losses import info_nce
from .stages import training_stage
from .vocab import build_vocab, tokenizer_files

__all__ = ["TrainConfig", "ClipSpec", "ClipTask", "ImagePairs", "train_clip", "train_clip_segment",
           "clip_files", "clip_model_config"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """cirkit's CLIP: model shape and training. ``decay_steps`` is the cosine schedule's horizon (not
    ``steps``, so that more steps continue a cached run); ``checkpoint_every`` steps make one cached segment."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    decay_steps: int = 1000
    checkpoint_every: int = 250
    width: int = 64
    layers: int = 2
    heads: int = 4
    patch_size: int = 16
    context_length: int = 32
    projection_dim: int = 128
    act: str = "quick_gelu"
    # the products' operands: "bfloat16" = mixed precision (cirkit/encoders/mixed_matmul.py; the demo's choice,
    # ~1.3x faster steps on a CPU with AVX512-BF16); float32 stays the default because the methods' built-in
    # worlds (and the figures measured on them) use a CLIP trained so
    matmul: str = "float32"

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "steps", "batch_size", "width", "layers", "heads", "patch_size",
                                 "context_length", "projection_dim", "checkpoint_every")
        checks.integers_at_least(self, 0, "warmup_steps")
        checks.numbers_at_least(self, 0, "learning_rate", strict=True)
        checks.numbers_at_least(self, 0, "weight_decay")
        if self.matmul not in MATMUL_DTYPES:
            checks.fail(self, "matmul", f"one of {', '.join(MATMUL_DTYPES)}", self.matmul)
        if self.width % self.heads:
            checks.fail(self, "heads", f"a divisor of width = {self.width}", self.heads)
        if self.decay_steps <= self.warmup_steps:
            checks.fail(self, "decay_steps", f"more than warmup_steps = {self.warmup_steps}", self.decay_steps)

    def trainer(self) -> TrainerConfig:
        return TrainerConfig(seed=self.seed, steps=self.steps, batch_size=self.batch_size,
                             learning_rate=self.learning_rate, warmup_steps=self.warmup_steps, schedule="cosine",
                             decay_steps=self.decay_steps, weight_decay=self.weight_decay,
                             checkpoint_every=self.checkpoint_every)

    def spec(self) -> ClipSpec:
        return ClipSpec(self.width, self.layers, self.heads, self.patch_size, self.context_length,
                        self.projection_dim, self.act, self.matmul)


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """The model's shape (the task config of the CLIP training stage)."""

    width: int = 64
    layers: int = 2
    heads: int = 4
    patch_size: int = 16
    context_length: int = 32
    projection_dim: int = 128
    act: str = "quick_gelu"
    matmul: str = "float32"

    def __post_init__(self) -> None:  # the training stage's task config: a typo must not train in float32
        if self.matmul not in MATMUL_DTYPES:
            checks.fail(self, "matmul", f"one of {', '.join(MATMUL_DTYPES)}", self.matmul)


def clip_model_config(cfg: TrainConfig | ClipSpec, vocab_size: int, image_size: int) -> ClipConfig:
    tower = dict(hidden_size=cfg.width, intermediate_size=4 * cfg.width, num_attention_heads=cfg.heads,
                 num_hidden_layers=cfg.layers, hidden_act=cfg.act, layer_norm_eps=1e-5)
    text = TowerConfig(**tower, vocab_size=vocab_size, max_position_embeddings=cfg.context_length,
                       eos_token_id=vocab_size - 1)
    vision = TowerConfig(**tower, image_size=image_size, patch_size=cfg.patch_size)
    return ClipConfig(text, vision, cfg.projection_dim)


def _tokenize(directory_files: dict[str, bytes], captions: list[str], context: int) -> np.ndarray:
    from ..encoders.clip_text import ClipTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in directory_files.items():
            with open(f"{tmp}/{name}", "wb") as f:
                f.write(data)
        return ClipTokenizer(tmp, context)(captions)


def _trim_to_longest(ids: np.ndarray, eos: int) -> np.ndarray:
    """Token ids cut after the last position any caption's first end-of-text token reaches."""
    first_eos = np.argmax(ids == eos, axis=1)
    return np.ascontiguousarray(ids[:, : int(first_eos.max()) + 1])


@dataclasses.dataclass(frozen=True)
class ClipTask:
    """Both towers and the temperature train; batches hold uint8 ``pixels`` (B, H, W, 3) and ``ids`` (B, T),
    and the pixels reach the step already cut into patches (:meth:`prepare`, on the host, still uint8)."""

    model: ClipConfig
    matmul: str = "float32"  # "bfloat16": mixed precision (cirkit/encoders/mixed_matmul.py)

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**batch, "pixels": cut_patches(batch["pixels"], self.model.vision.patch_size)}

    def init(self, rng):
        """The initial parameters. ``lazy_init``: the same values, bit for bit, as ``init`` (the initialisers run
        the same eager ops), without running the towers' forward pass on a dummy input, whose ops ``init`` would
        each compile and run (11 -> 7 s for the demo's CLIP in a fresh process)."""
        k1, k2 = jax.random.split(rng)
        size = self.model.vision.image_size
        text = ClipText(self.model).lazy_init(k1, jax.ShapeDtypeStruct((1, 2), jnp.int32))
        vision = ClipVision(self.model).lazy_init(k2, jax.ShapeDtypeStruct((1, 3, size, size), jnp.float32))
        return {"text": text["params"], "vision": vision["params"],
                "logit_scale": jnp.asarray(np.log(1 / 0.07), jnp.float32)}

    def loss(self, params, batch, rng):
        normalise = (tuple(OPENAI_MEAN), tuple(OPENAI_STD))  # folded into the patch embedding's kernel
        vision = ClipVision(self.model, patches=True, normalise=normalise, matmul=self.matmul)
        v = vision.apply({"params": params["vision"]}, batch["pixels"])
        t = ClipText(self.model, matmul=self.matmul).apply({"params": params["text"]}, batch["ids"])
        return info_nce(v, t, params["logit_scale"]), {"logit_scale": params["logit_scale"]}


class ImagePairs:
    """(image file, token ids) pairs that decode an image the first time a batch asks for it, into a uint8
    memory-mapped scratch file (unlinked, so it vanishes with the process): nothing else is held."""

    def __init__(self, paths: list[str], ids: np.ndarray, image_size: int) -> None:
        self.paths, self.ids = list(paths), ids
        self._pixels = np.memmap(tempfile.TemporaryFile(), np.uint8, "w+", shape=(len(paths), image_size, image_size, 3))
        self._decoded = np.zeros(len(paths), bool)

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        for i in np.unique(indices[~self._decoded[indices]]):
            self._pixels[i] = np.asarray(Image.open(self.paths[i]).convert("RGB"))
            self._decoded[i] = True
        return {"pixels": self._pixels[indices], "ids": self.ids[indices]}


def _text_side(captions: list[str], context: int) -> tuple[dict[str, bytes], int, np.ndarray]:
    """Tokenizer files, vocabulary size and token ids (cut to the longest caption) of a caption list."""
    files = tokenizer_files(captions)
    vocab_size = len(build_vocab(captions)[0])
    return files, vocab_size, _trim_to_longest(_tokenize(files, captions, context), vocab_size - 1)


def _pairs(split) -> tuple[list[str], list[str]]:
    images = {im.id: im for im in split.gallery.images}
    return [images[t.target].path for t in split.truths], [q.text for q in split.queries]


def build_clip(spec: ClipSpec, pairs) -> tuple[ClipTask, ImagePairs]:
    """The CLIP task and data source of a split's (caption, target image) pairs."""
    paths, captions = _pairs(pairs)
    _, vocab_size, ids = _text_side(captions, spec.context_length)
    with Image.open(paths[0]) as first:
        size = first.size[0]
    return ClipTask(clip_model_config(spec, vocab_size, size), spec.matmul), ImagePairs(paths, ids, size)


train_clip_segment = training_stage(build_clip, name="train_clip", version=1)


def clip_files(cfg: TrainConfig, checkpoint: Checkpoint, captions: list[str], image_size: int) -> dict[str, bytes]:
    """The trained CLIP as a ``CLIPModel`` folder's files, with its training log and loss curve."""
    tok_files, vocab_size, _ = _text_side(captions, cfg.context_length)
    config = clip_model_config(cfg, vocab_size, image_size)
    params = full_params(ClipTask(config), checkpoint, cfg.seed)
    losses = [float(x) for x in np.asarray(checkpoint.losses)]
    log = {"losses": losses, "steps": checkpoint.step, "batch_size": cfg.batch_size, "pairs": len(captions),
           "logit_scale": float(np.asarray(params["logit_scale"]).reshape(()))}
    files = dict(tok_files)
    files.update(_hf_files(config, params, image_size))
    files["training_log.json"] = json.dumps(log).encode()
    files["loss_curve.png"] = loss_curve_png(losses)
    return files


def train_clip(cfg: TrainConfig, images: np.ndarray, captions: list[str], progress=None) -> tuple[dict[str, bytes], dict]:
    """Train on in-memory (uint8 image, caption) pairs without a store; return the folder's files and the log."""
    _, vocab_size, ids = _text_side(captions, cfg.context_length)
    task = ClipTask(clip_model_config(cfg, vocab_size, images.shape[1]), cfg.matmul)
    trainer = dataclasses.replace(cfg.trainer(), batch_size=min(cfg.batch_size, len(captions)))
    checkpoint = train(task, ArraySource({"pixels": images, "ids": ids}), trainer,
                       progress=(lambda step, stop, losses: progress(len(losses))) if progress else None)
    files = clip_files(dataclasses.replace(cfg, batch_size=trainer.batch_size), checkpoint, captions, images.shape[1])
    return files, json.loads(files["training_log.json"])


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
