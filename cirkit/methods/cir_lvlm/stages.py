"""CIR-LVLM's training and export as cached stages: the trainer's segments over the training triplets, then
the final checkpoint written as a model folder that the encoder registry loads (kind ``cir_lvlm``)."""

from __future__ import annotations

import json

from ...builtin.files import FileSet, pack_files
from ...encoders.interface import ModelRef
from ...engine import stage
from ...mllm.data import TrainingTriplets
from ...mllm.loading import export_files_of
from ...mllm.model import backbone
from ...training import Checkpoint, DataSource, training_stage
from .task import LVLMConfig, LVLMTask

__all__ = ["lvlm_task", "train_cir_lvlm", "export_cir_lvlm"]


def lvlm_task(config: LVLMConfig, data: TrainingTriplets) -> tuple[LVLMTask, DataSource]:
    bb = backbone(data.llm, data.llm_digest, config.model, data.dim)
    return LVLMTask(config, bb, data.query_task, data.target_task), data.source()


train_cir_lvlm = training_stage(lvlm_task, name="train_cir_lvlm", version=1)


def training_log(checkpoint: Checkpoint) -> bytes:
    return json.dumps({"steps": checkpoint.step, "loss": [round(float(x), 6) for x in checkpoint.losses]}).encode()


@stage(version=1, helpers=[lvlm_task, export_files_of, training_log])
def export_cir_lvlm(config: LVLMConfig, checkpoint: Checkpoint, data: TrainingTriplets, vision: ModelRef) -> FileSet:
    """The trained CIR-LVLM as a model folder's files (adapter tensors, manifest, training log)."""
    task, _ = lvlm_task(config, data)
    return pack_files(export_files_of("cir_lvlm", config, task, dict(checkpoint.params), vision.path, vision.digest,
                                      {"training_log.json": training_log(checkpoint)}))
