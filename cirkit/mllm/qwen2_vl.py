"""The frozen vision transformer of a Qwen2-VL folder, up to its patch merger (whose output is in the LLM's
embedding space: the visual tokens the Qwen2-VL LLM was trained to read, as CIR-LVLM uses the LVLM's own pathway).

Architecture (transformers' ``Qwen2VisionTransformerPretrainedModel``): a patch embedding over 14x14 patches of
two identical frames (a Conv3d with stride = kernel, i.e. one matrix), ``depth`` pre-norm blocks (LayerNorm
eps 1e-6, fused qkv, 2-D rotary on the patch's row and column, full attention within the image, MLP with
``hidden_act``), then the merger: LayerNorm, each 2x2 block of patches concatenated, Linear, GELU, Linear.

One difference, on purpose: Qwen2-VL resizes each image to its own grid (aspect kept, ``smart_resize``), so the
number of visual tokens varies; cirkit's frozen features have one shape, so every image is resized to
``side`` x ``side`` (default 448: a 32x32 patch grid, 256 visual tokens). Qwen2.5-VL's tower (window attention,
RMSNorm, SwiGLU) is not read.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from PIL import Image

from ..encoders.clip_config import CheckpointError
from ..encoders.clip_image import OPENAI_MEAN, OPENAI_STD, open_image
from ..encoders.clip_model import activation
from ..encoders.safetensors_io import checkpoint_files, read_safetensors

__all__ = ["Qwen2VLVision", "read_vision_settings", "patchify"]

DEFAULT_SIDE = 448
_BLOCK = {"norm1.weight": "n1_w", "norm1.bias": "n1_b", "norm2.weight": "n2_w", "norm2.bias": "n2_b",
          "attn.qkv.weight": "qkv_w", "attn.qkv.bias": "qkv_b", "attn.proj.weight": "proj_w", "attn.proj.bias": "proj_b",
          "mlp.fc1.weight": "fc1_w", "mlp.fc1.bias": "fc1_b", "mlp.fc2.weight": "fc2_w", "mlp.fc2.bias": "fc2_b"}
_MERGER = {"merger.ln_q.weight": "ln_w", "merger.ln_q.bias": "ln_b", "merger.mlp.0.weight": "m0_w",
           "merger.mlp.0.bias": "m0_b", "merger.mlp.2.weight": "m2_w", "merger.mlp.2.bias": "m2_b"}


def read_vision_settings(directory: str) -> dict:
    path = os.path.join(directory, "config.json")
    raw = json.loads(open(path, encoding="utf-8").read())
    vision = raw.get("vision_config")
    if not isinstance(vision, dict):
        raise CheckpointError(f"{path}: a qwen2_vl config needs a 'vision_config' object")
    text = raw.get("text_config") or raw
    missing = [f"vision_config.{k}" for k in ("depth", "embed_dim", "num_heads") if not isinstance(vision.get(k), int)]
    if not isinstance(text.get("hidden_size"), int):
        missing.append("text_config.hidden_size")
    if missing:
        raise CheckpointError(f"{path}: lacks integer field(s) {', '.join(missing)}")
    theta = (vision.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    prep_path = os.path.join(directory, "preprocessor_config.json")
    prep = json.loads(open(prep_path, encoding="utf-8").read()) if os.path.isfile(prep_path) else {}
    return {"depth": vision["depth"], "embed": vision["embed_dim"], "heads": vision["num_heads"],
            "mlp": int(vision["embed_dim"] * vision.get("mlp_ratio", 4)), "patch": int(vision.get("patch_size", 14)),
            "merge": int(vision.get("spatial_merge_size", 2)), "frames": int(vision.get("temporal_patch_size", 2)),
            "channels": int(vision.get("in_channels", vision.get("in_chans", 3))), "theta": float(theta),
            "act": vision.get("hidden_act", "quick_gelu"), "out": text["hidden_size"],
            "mean": tuple(prep.get("image_mean", OPENAI_MEAN)), "std": tuple(prep.get("image_std", OPENAI_STD))}


def patchify(image: np.ndarray, s: dict) -> np.ndarray:
    """``[C, H, W]`` normalised -> ``[grid_h * grid_w, C * frames * P * P]`` in the processor's order: 2x2 merge
    blocks row-major, the patches of a block row-major within it, the frame repeated."""
    c, h, w = image.shape
    p, m = s["patch"], s["merge"]
    gh, gw = h // p, w // p
    x = image.reshape(c, gh // m, m, p, gw // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], s["frames"], p, p))
    return np.ascontiguousarray(x).reshape(gh * gw, c * s["frames"] * p * p)


def _positions(grid: int, merge: int) -> np.ndarray:
    """(row, column) of each patch in ``patchify``'s order, ``[grid * grid, 2]``."""
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def blocked(a):
        return a.reshape(grid // merge, merge, grid // merge, merge).transpose(0, 2, 1, 3).reshape(-1)

    return np.stack([blocked(rows), blocked(cols)], axis=1)


def _load(directory: str, s: dict) -> dict:
    found: dict[str, np.ndarray] = {}
    for path in checkpoint_files(directory):
        for name, value in read_safetensors(path).items():
            bare = name.removeprefix("model.")
            if bare.startswith("visual."):
                found[bare.removeprefix("visual.")] = np.asarray(value, np.float32)
    e, q = s["embed"], s["embed"] * s["merge"] ** 2
    want = {"patch_embed.proj.weight": (e, s["channels"], s["frames"], s["patch"], s["patch"])}
    for i in range(s["depth"]):
        for hf, shape in zip(_BLOCK, [(e,)] * 4 + [(3 * e, e), (3 * e,), (e, e), (e,), (s["mlp"], e), (s["mlp"],),
                                                    (e, s["mlp"]), (e,)]):
            want[f"blocks.{i}.{hf}"] = shape
    want.update(zip(_MERGER, [(e,), (e,), (q, q), (q,), (s["out"], q), (s["out"],)]))
    for name, shape in want.items():
        if name not in found or found[name].shape != shape:
            got = "absent" if name not in found else f"of shape {found[name].shape}"
            raise CheckpointError(f"{directory}: tensor visual.{name} is {got}; expected {shape}")
    def layout(hf, array):  # torch Linear [out, in] -> [in, out]; norms and biases as they are
        return array.T if hf.endswith(".weight") and not hf.startswith(("norm", "merger.ln")) else array

    blocks = {ours: np.stack([layout(hf, found[f"blocks.{i}.{hf}"]) for i in range(s["depth"])])
              for hf, ours in _BLOCK.items()}
    merger = {ours: layout(hf, found[hf]) for hf, ours in _MERGER.items()}
    return {"patch": found["patch_embed.proj.weight"].reshape(e, -1).T, "blocks": blocks, "merger": merger}


def _norm(x, w, b, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps) * w + b


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _features(params, patches, positions, heads: int, act: str, theta: float):
    """Patches ``[n, L, D]`` of same-size images -> merged visual tokens ``[n, L / merge^2, out]``."""
    n, length, _ = patches.shape
    x = patches @ params["patch"]
    hd = x.shape[-1] // heads
    inv = 1.0 / (theta ** (jnp.arange(0, hd // 2, 2, dtype=jnp.float32) / (hd // 2)))
    freqs = jnp.concatenate([positions[:, 0, None] * inv, positions[:, 1, None] * inv], axis=-1)
    cos, sin = jnp.cos(jnp.concatenate([freqs, freqs], -1))[:, None], jnp.sin(jnp.concatenate([freqs, freqs], -1))[:, None]
    fn = activation(act)

    def block(x, p):
        h = _norm(x, p["n1_w"], p["n1_b"])
        q, k, v = jnp.split((h @ p["qkv_w"] + p["qkv_b"]).reshape(n, length, 3, heads, hd), 3, axis=2)
        q, k, v = _rotate(q[:, :, 0], cos, sin), _rotate(k[:, :, 0], cos, sin), v[:, :, 0]
        weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) * hd**-0.5, axis=-1)
        x = x + jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(n, length, -1) @ p["proj_w"] + p["proj_b"]
        h = _norm(x, p["n2_w"], p["n2_b"])
        return x + fn(h @ p["fc1_w"] + p["fc1_b"]) @ p["fc2_w"] + p["fc2_b"], None

    x, _ = lax.scan(block, x, params["blocks"])
    m = params["merger"]
    x = _norm(x, m["ln_w"], m["ln_b"]).reshape(n, -1, m["m0_w"].shape[0])
    return jax.nn.gelu(x @ m["m0_w"] + m["m0_b"], approximate=False) @ m["m2_w"] + m["m2_b"]


class Qwen2VLVision:
    """The same interface as :class:`~cirkit.mllm.vision.VisionTower`: image files -> ``[n, tokens, dim]``."""

    def __init__(self, directory: str, batch_size: int = 8, side: int = DEFAULT_SIDE) -> None:
        self.directory, self.batch_size = directory, batch_size
        self.settings = s = read_vision_settings(directory)
        if side % (s["patch"] * s["merge"]):
            raise ValueError(f"side must be a multiple of {s['patch'] * s['merge']}, got {side}")
        self.side = side
        self.params = jax.tree.map(jnp.asarray, _load(directory, s))
        self._positions = jnp.asarray(_positions(side // s["patch"], s["merge"]), jnp.float32)

    @property
    def dim(self) -> int:
        return self.settings["out"]

    @property
    def tokens(self) -> int:
        return (self.side // self.settings["patch"] // self.settings["merge"]) ** 2

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The image resized (bicubic) to ``side`` x ``side``, scaled and normalised, ``[C, side, side]``."""
        arr = np.asarray(image.convert("RGB").resize((self.side, self.side), Image.Resampling.BICUBIC), np.float32)
        mean, std = np.asarray(self.settings["mean"], np.float32), np.asarray(self.settings["std"], np.float32)
        return ((arr / 255.0 - mean) / std).transpose(2, 0, 1)

    def states_of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``[n, C, side, side]`` -> ``[n, tokens, dim]``."""
        s = self.settings
        out = [np.asarray(_features(self.params, jnp.asarray(np.stack([patchify(im, s) for im in chunk])),
                                    self._positions, s["heads"], s["act"], s["theta"]))
               for chunk in (pixels[i:i + self.batch_size] for i in range(0, len(pixels), self.batch_size))]
        return np.concatenate(out) if out else np.zeros((0, self.tokens, self.dim), np.float32)

    def states_of_files(self, paths: Sequence[str]) -> np.ndarray:
        if not len(paths):
            return np.zeros((0, self.tokens, self.dim), np.float32)
        return self.states_of_pixels(np.stack([self.pixels(open_image(p, None)) for p in paths]))
