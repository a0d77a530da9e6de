"""CIR-CoT as cached stages: training (the trainer's segments over reasoned triplets), export as a model folder
(encoder kind ``cir_cot``), and inference in two steps: ``generate_cot`` writes each query's chain of thought
(cached per query like every model call, readable with ``cirkit show``), ``with_reasoning`` appends it to the
query text that ``embed_queries`` then embeds."""

from __future__ import annotations

from ...builtin.files import FileSet, pack_files
from ...encoders.interface import ModelRef
from ...encoders.stages import EmbedConfig, QueryInput, encoder_for, query_identity
from ...engine import stage
from ...mllm.data import TrainingTriplets
from ...mllm.loading import export_files_of
from ...mllm.model import backbone
from ...training import Checkpoint, DataSource, training_stage
from ..cir_lvlm.stages import training_log
from .encoder import SEPARATOR
from .task import CoTConfig, CoTTask

__all__ = ["cot_task", "train_cir_cot", "export_cir_cot", "generate_cot", "with_reasoning"]


def cot_task(config: CoTConfig, data: TrainingTriplets) -> tuple[CoTTask, DataSource]:
    bb = backbone(data.llm, data.llm_digest, config.model, data.dim)
    return CoTTask(config, bb, data.query_task, data.target_task), data.source()


train_cir_cot = training_stage(cot_task, name="train_cir_cot", version=1)


@stage(version=1, helpers=[cot_task, export_files_of, training_log])
def export_cir_cot(config: CoTConfig, checkpoint: Checkpoint, data: TrainingTriplets, vision: ModelRef) -> FileSet:
    """The trained CIR-CoT as a model folder's files (adapter tensors, manifest, training log)."""
    task, _ = cot_task(config, data)
    return pack_files(export_files_of("cir_cot", config, task, dict(checkpoint.params), vision.path, vision.digest,
                                      {"training_log.json": training_log(checkpoint)}))


@stage(version=1, over="queries", shard_size=64, helpers=[encoder_for], item_key=query_identity)
def generate_cot(config: EmbedConfig, queries: tuple[QueryInput, ...], model: ModelRef) -> tuple[str, ...]:
    """Each query's chain of thought (caption, reasoning, conclusion) written by the trained model, greedily."""
    encoder = encoder_for(config, model)
    return tuple(encoder.generate([q.reference.path for q in queries], [q.text for q in queries]))


@stage(version=1)
def with_reasoning(config: None, queries: tuple[QueryInput, ...], reasoning: tuple[str, ...]) -> tuple[QueryInput, ...]:
    """Each query's text followed by its chain of thought (what the CIR-CoT encoder embeds)."""
    return tuple(QueryInput(q.reference, f"{q.text}{SEPARATOR}{r}") for q, r in zip(queries, reasoning))
