"""CIR-LVLM's training as a cached stage: a composed train split, the frozen LLM folder and the frozen CLIP
checkpoint in; a checkpoint folder's files (trainable tree, config, base digests, loss log) out."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ... import config_checks as checks
from ...builtin.files import FileSet, pack_files
from ...data.model import Split
from ...encoders.stages import ClipCheckpoint
from ...engine import stage
from ...engine.progress import Progress
from ...lm.weights import load_lm
from ...mllm.batching import pad_rows
from ...mllm.checkpoint import checkpoint_files
from ...mllm.interim_fit import fit
from ...mllm.loading import tokenizer_of, folder_digest, task_ids
from ...mllm.model import backbone
from ...mllm.triplets import triplets_of
from ...mllm.vision import load_vision
from .task import LVLMConfig, LVLMTask

__all__ = ["LVLMTrainConfig", "train_cir_lvlm"]


@dataclasses.dataclass(frozen=True)
class LVLMTrainConfig:
    lvlm: LVLMConfig = LVLMConfig()
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 1, "steps", "batch_size")


def training_log(losses: list[float]) -> bytes:
    return json.dumps({"steps": len(losses), "loss": [round(x, 6) for x in losses]}).encode()


@stage(version=1, helpers=[fit, triplets_of, checkpoint_files, training_log, LVLMTask])
def train_cir_lvlm(config: LVLMTrainConfig, split: Split, llm: str, vision: ClipCheckpoint) -> FileSet:
    """Train the connector, prompt pool, pooling and LoRA of CIR-LVLM on the split's triplets."""
    tower = load_vision(vision.path, vision.digest)
    data = triplets_of(split, tower)
    lm, tok = load_lm(llm), tokenizer_of(llm)
    cfg = config.lvlm
    bb = backbone(lm, cfg.model, tower.dim)
    task = LVLMTask(cfg, bb, task_ids(tok, cfg.query_task), task_ids(tok, cfg.target_task))
    ids = [task_ids(tok, t) for t in data.texts]
    pad = bb.config.pad_token_id if bb.config.pad_token_id is not None else 0

    def make_batch(rows: np.ndarray) -> dict:
        tokens, mask = pad_rows([ids[i] for i in rows], pad, cfg.max_text_tokens)
        return {"reference": data.states[data.reference[rows]], "target": data.states[data.target[rows]],
                "tokens": tokens, "mask": mask}

    with Progress().bar("train CIR-LVLM", total=config.steps, unit="steps") as advance:
        trained, losses = fit(task, make_batch, len(data), steps=config.steps, batch_size=config.batch_size,
                              learning_rate=config.learning_rate, seed=config.seed, progress=advance)
    files = checkpoint_files("cir_lvlm", dataclasses.asdict(cfg), trained,
                             {"llm": folder_digest(llm), "vision": vision.digest},
                             {"training_log.json": training_log(losses)})
    return pack_files(files)
