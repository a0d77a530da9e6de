"""The frozen visual pathway of a LLaVA-1.6 (LLaVA-NeXT) folder: its CLIP tower up to ``vision_feature_layer``,
the ``vision_feature_select_strategy`` (``default`` drops the class token, ``full`` keeps it) and its pretrained
``multi_modal_projector`` (Linear, activation, Linear) into the LLM's embedding space.

Why the projector is part of the frozen path: CIR-LVLM uses the LVLM's own visual pathway, so the features
cirkit's connector reads are the visual tokens the LLaVA LLM was trained to read; the connector's learnable
queries then turn them into the sentence-level visual prompt (``project=False`` gives the tower's features).

Only the base view is computed: the whole image resized to the tower's square input (as LLaVA-NeXT's processor
makes its first crop). The anyres tiling (``image_grid_pinpoints``) and the ``image_newline`` token are not.
Tensor names of both layouts are read: ``vision_tower.vision_model.*`` / ``multi_modal_projector.*`` (published
llava-hf checkpoints), ``vision_tower.*`` (transformers v5's ``save_pretrained``) and ``model.``-prefixed names.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ..encoders.clip_config import CheckpointError, ClipConfig, TowerConfig
from ..encoders.clip_image import OPENAI_MEAN, OPENAI_STD, open_image
from ..encoders.clip_model import ClipVision, activation
from ..encoders.clip_weights import _leaf, _tower_and_path, _unflatten, flatten_params, hf_name
from ..encoders.safetensors_io import checkpoint_files, read_safetensors

__all__ = ["LlavaNextVision", "is_llava_next", "read_settings"]

_CLIP_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                             image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def _raw_config(directory: str) -> tuple[dict, str]:
    path = os.path.join(directory, "config.json")
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the model config ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return raw, path


def is_llava_next(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "config.json")) and _raw_config(directory)[0].get("model_type") == "llava_next"


def read_settings(directory: str) -> dict:
    """The tower's CLIP config cut to the layers LLaVA reads, and the pathway's settings, checked."""
    raw, path = _raw_config(directory)
    vision = raw.get("vision_config") or {}
    kind = vision.get("model_type", "clip_vision_model")
    if kind != "clip_vision_model":
        raise CheckpointError(f"{path}: 'vision_config.model_type' is {kind!r}; cirkit reads LLaVA-NeXT's CLIP tower "
                              "('clip_vision_model') only")
    values = {k: vision.get(k, v) for k, v in _CLIP_VISION_DEFAULTS.items()}
    layer = raw.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise CheckpointError(f"{path}: 'vision_feature_layer' is {layer!r}; cirkit reads one layer (an integer), "
                              "not a list of layers to concatenate")
    total = values["num_hidden_layers"]
    run = layer if layer >= 0 else total + 1 + layer  # hidden_states[0] is the embedding, [i] layer i's output
    if not 0 <= run <= total:
        raise CheckpointError(f"{path}: 'vision_feature_layer' {layer} is outside the tower's {total} layers")
    strategy = raw.get("vision_feature_select_strategy", "default")
    if strategy not in ("default", "full"):
        raise CheckpointError(f"{path}: 'vision_feature_select_strategy' is {strategy!r}; expected 'default' or 'full'")
    tower = TowerConfig(**{**values, "num_hidden_layers": run})
    text = raw.get("text_config") or {}
    prep_path = os.path.join(directory, "preprocessor_config.json")
    prep = json.loads(open(prep_path, encoding="utf-8").read()) if os.path.isfile(prep_path) else {}
    return {"clip": ClipConfig(text=tower, vision=tower, projection_dim=0),  # ClipVision reads the vision tower only
            "strategy": strategy, "text_hidden": int(text.get("hidden_size", 4096)),
            "act": raw.get("projector_hidden_act", "gelu"), "bias": bool(raw.get("multimodal_projector_bias", True)),
            "mean": tuple(prep.get("image_mean", OPENAI_MEAN)), "std": tuple(prep.get("image_std", OPENAI_STD))}


def _clip_name(name: str) -> str | None:
    """A LLaVA-NeXT tower tensor name -> the CLIPModel name (``vision_model.*``), else None."""
    name = name.removeprefix("model.")
    if not name.startswith("vision_tower."):
        return None
    return "vision_model." + name.removeprefix("vision_tower.").removeprefix("vision_model.")


def _load(directory: str, settings: dict) -> tuple[dict, dict]:
    """(the tower's Flax params for the kept layers, the projector's {linear_1, linear_2: {kernel, bias}})."""
    config: ClipConfig = settings["clip"]
    size = config.vision.image_size
    expected = flatten_params(jax.eval_shape(ClipVision(config, states=True).init, jax.random.PRNGKey(0),
                                             jnp.zeros((1, 3, size, size)))["params"])
    tower, projector, unknown = {}, {}, []
    for path in checkpoint_files(directory):
        for name, value in read_safetensors(path).items():
            clip = _clip_name(name)
            bare = name.removeprefix("model.")
            if clip is not None:
                found = _tower_and_path(clip)
                key, array = _leaf(found[1], np.asarray(value, np.float32)) if found else (None, None)
                if key is not None and tuple(key) in expected:
                    if array.shape != tuple(expected[tuple(key)].shape):
                        raise CheckpointError(f"{path}: tensor {name} has shape {tuple(value.shape)}, which does not "
                                              f"fit the tower in config.json")
                    tower[tuple(key)] = array
                elif not (".layers." in clip or "post_layernorm" in clip or "position_ids" in clip):
                    unknown.append(name)  # later layers and the unused final norm are simply not read
            elif bare.startswith("multi_modal_projector."):
                projector[bare.removeprefix("multi_modal_projector.")] = np.asarray(value, np.float32)
    missing = [hf_name("vision", k).replace("vision_model.", "vision_tower.vision_model.", 1)
               for k in expected if k not in tower]
    if missing or unknown:
        what = ([f"missing tower tensor(s) {', '.join(missing[:4])}"] if missing else []) + (
            [f"unknown tower tensor(s) {', '.join(unknown[:4])}"] if unknown else [])
        raise CheckpointError(f"{directory}: " + "; ".join(what))
    return _unflatten(tower), _projector(directory, projector, settings)


def _projector(directory: str, found: dict, settings: dict) -> dict:
    d_in, d_out = settings["clip"].vision.hidden_size, settings["text_hidden"]
    out = {}
    for name, (n_in, n_out) in {"linear_1": (d_in, d_out), "linear_2": (d_out, d_out)}.items():
        weight = found.get(f"{name}.weight")
        if weight is None or weight.shape != (n_out, n_in):
            got = "absent" if weight is None else f"of shape {weight.shape}"
            raise CheckpointError(f"{directory}: tensor multi_modal_projector.{name}.weight is {got}; expected "
                                  f"{(n_out, n_in)} (vision hidden {d_in} -> text hidden {d_out})")
        bias = found.get(f"{name}.bias")
        if settings["bias"] and (bias is None or bias.shape != (n_out,)):
            raise CheckpointError(f"{directory}: tensor multi_modal_projector.{name}.bias is missing or misshapen")
        out[name] = {"kernel": weight.T, "bias": bias if settings["bias"] else np.zeros(n_out, np.float32)}
    return out


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _features(params, pixels, config: ClipConfig, strategy: str, act: str, project: bool):
    """Pixels ``[n, 3, S, S]`` -> the tower's state at the feature layer, selected, projected (one compile per
    tower shape, shared by every loaded folder of that shape)."""
    x = ClipVision(config, jnp.float32, states=True).apply({"params": params["tower"]}, pixels)
    x = x[:, 1:] if strategy == "default" else x
    if project:
        p = params["projector"]
        x = activation(act)(x @ p["linear_1"]["kernel"] + p["linear_1"]["bias"]) @ p["linear_2"]["kernel"]
        x = x + p["linear_2"]["bias"]
    return x


class LlavaNextVision:
    """The same interface as :class:`~cirkit.mllm.vision.VisionTower`: image files -> ``[n, tokens, dim]``."""

    def __init__(self, directory: str, batch_size: int = 32, project: bool = True) -> None:
        self.directory, self.batch_size, self.project = directory, batch_size, project
        self.settings = read_settings(directory)
        tower, projector = _load(directory, self.settings)
        self.params = {"tower": tower, "projector": projector}

    @property
    def image_size(self) -> int:
        return self.settings["clip"].vision.image_size

    @property
    def dim(self) -> int:
        return self.settings["text_hidden"] if self.project else self.settings["clip"].vision.hidden_size

    @property
    def tokens(self) -> int:
        side = self.image_size // self.settings["clip"].vision.patch_size
        return side * side + (self.settings["strategy"] == "full")

    def base_view(self, image: Image.Image) -> np.ndarray:
        """LLaVA-NeXT's first crop: the whole image resized (bicubic) to the tower's square, normalised."""
        size = self.image_size
        arr = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255.0
        mean, std = np.asarray(self.settings["mean"], np.float32), np.asarray(self.settings["std"], np.float32)
        return ((arr - mean) / std).transpose(2, 0, 1)

    def states_of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        key = (self.settings["clip"], self.settings["strategy"], self.settings["act"], self.project)
        out = [np.asarray(_features(self.params, jnp.asarray(pixels[i:i + self.batch_size], jnp.float32), *key))
               for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.tokens, self.dim), np.float32)

    def states_of_files(self, paths: Sequence[str]) -> np.ndarray:
        """Image files -> ``[n, tokens, dim]`` float32; a bad file raises an error naming it."""
        if not len(paths):
            return np.zeros((0, self.tokens, self.dim), np.float32)
        return self.states_of_pixels(np.stack([self.base_view(open_image(p, None)) for p in paths]))
