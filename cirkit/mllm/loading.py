"""Load a trained MLLM method for inference: its checkpoint folder, the frozen LLM and vision folders it names
by digest, the LLM's tokenizer, and the task object that computes embeddings from the trained tree."""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp

from ..data.filehash import FileDigests
from ..encoders.clip_config import CheckpointError
from ..lm.weights import load_lm
from .batching import pad_rows
from .checkpoint import read_checkpoint
from .model import backbone
from .vision import VisionTower

__all__ = ["Loaded", "load_trained", "folder_digest", "task_ids", "tokenizer_of"]


def folder_digest(path: str) -> str:
    return FileDigests().folder_digest(os.path.abspath(path))


@functools.lru_cache(maxsize=2)
def tokenizer_of(directory: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def task_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


@dataclasses.dataclass(frozen=True)
class Loaded:
    task: object  # LVLMTask or CoTTask
    trainable: dict
    tokenizer: object
    vision: VisionTower
    pad_id: int

    def tokens(self, texts: list[str], max_tokens: int):
        return pad_rows([task_ids(self.tokenizer, t) for t in texts], self.pad_id, max_tokens)


def load_trained(directory: str, method: str, config_type: type, task_type: type, llm: str, vision: str) -> Loaded:
    """Read the checkpoint, check the frozen folders are the ones it was trained on, and bind the task."""
    from ..experiment.config import build

    manifest, trainable = read_checkpoint(directory, method)
    for role, folder in (("llm", llm), ("vision", vision)):
        expected = manifest.get("bases", {}).get(role)
        if expected != folder_digest(folder):
            raise CheckpointError(f"{directory}: trained on a {role} folder with digest {str(expected)[:12]}, "
                                  f"but {folder} has another content")
    config = build(config_type, manifest["config"], source=os.path.join(directory, "cirkit_mllm.json"))
    tower = VisionTower(vision)
    bb = backbone(load_lm(llm), config.model, tower.dim)
    tok = tokenizer_of(llm)
    task = task_type(config, bb, task_ids(tok, config.query_task), task_ids(tok, config.target_task))
    trainable = jax.tree.map(jnp.asarray, trainable)
    pad = bb.config.pad_token_id if bb.config.pad_token_id is not None else 0
    return Loaded(task, trainable, tok, tower, pad)
