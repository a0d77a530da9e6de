"""Load a trained MLLM method for inference: its checkpoint folder, the frozen LLM and vision folders it names
(checked by digest), the LLM's tokenizer, and the task object that computes embeddings from the trained tree."""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp

from ..data.filehash import FileDigests
from ..encoders.clip_config import CheckpointError
from ..training.checkpoint import flatten, unflatten
from .batching import pad_rows
from .checkpoint import MANIFEST, checkpoint_files, read_checkpoint
from .model import backbone
from .vision import VisionTower, open_vision

__all__ = ["Loaded", "load_trained", "folder_digest", "task_ids", "tokenizer_of", "export_files_of"]


def folder_digest(path: str) -> str:
    return FileDigests().folder_digest(os.path.abspath(path))


@functools.lru_cache(maxsize=2)
def tokenizer_of(directory: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def task_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def export_files_of(method: str, config, task, trained: dict, vision_path: str, vision_digest: str,
                    extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """A checkpoint folder's files for ``trained`` (flat names -> arrays) of a task bound to its backbone."""
    manifest = {"method": method, "config": dataclasses.asdict(config),
                "query_task": list(task.query_task), "target_task": list(task.target_task),
                "bases": {"llm": {"path": os.path.abspath(task.bb.llm), "digest": task.bb.llm_digest},
                          "vision": {"path": os.path.abspath(vision_path), "digest": vision_digest}}}
    return checkpoint_files(manifest, trained, extra)


@dataclasses.dataclass(frozen=True)
class Loaded:
    task: object  # LVLMTask or CoTTask
    params: dict
    tokenizer: object
    vision: VisionTower  # or a LLaVA-NeXT pathway (the same interface)
    pad_id: int

    def tokens(self, texts: list[str], max_tokens: int):
        return pad_rows([task_ids(self.tokenizer, t) for t in texts], self.pad_id, max_tokens)


def load_trained(directory: str, method: str, config_type: type, task_type: type) -> Loaded:
    """Read the checkpoint, check the frozen folders are the ones it was trained on, and bind the task."""
    from ..experiment.config import build

    manifest, tensors = read_checkpoint(directory, method)
    where = os.path.join(directory, MANIFEST)
    bases = manifest["bases"]
    for role in ("llm", "vision"):
        base = bases.get(role) or {}
        if not os.path.isdir(base.get("path", "")) or folder_digest(base["path"]) != base.get("digest"):
            raise CheckpointError(f"{where}: the frozen {role} folder {base.get('path')!r} is missing or has other "
                                  f"content than the checkpoint was trained on")
    config = build(config_type, manifest["config"], source=where)
    tower = open_vision(bases["vision"]["path"])
    bb = backbone(bases["llm"]["path"], bases["llm"]["digest"], config.model, tower.dim)
    task = task_type(config, bb, tuple(manifest["query_task"]), tuple(manifest["target_task"]))
    initial = flatten(task.init(None))
    unknown = sorted(set(tensors) - set(initial))
    if unknown:
        raise CheckpointError(f"{directory}: tensor {unknown[0]!r} is not a parameter of this {method} config")
    params = jax.tree.map(jnp.asarray, unflatten({**initial, **tensors}))
    pad = bb.lm.pad_token_id if bb.lm.pad_token_id is not None else 0
    return Loaded(task, params, tokenizer_of(bb.llm), tower, pad)
