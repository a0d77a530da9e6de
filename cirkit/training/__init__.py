"""Training: one generic, resumable contrastive trainer (:func:`train`, cached as segment stages by
:func:`fit`) and cirkit's own small CLIP trained on it (:mod:`.clip_trainer`).

A trained method supplies a :class:`Task` (init, loss, optional trainable mask and evaluate) and a
:class:`DataSource`, declares its stage with :func:`training_stage` and runs it with :func:`fit`.
"""

from .checkpoint import Checkpoint, flatten, unflatten
from .config import TrainerConfig, learning_rate_schedule
from .data import ArraySource, DataSource, GatherSource, batch_indices, epoch_order
from .loop import full_params, observe, train
from .losses import info_nce
from .stages import SegmentConfig, fit, segment_bounds, training_stage
from .task import Task

__all__ = [
    "ArraySource", "Checkpoint", "DataSource", "GatherSource", "SegmentConfig", "Task", "TrainerConfig", "batch_indices",
    "epoch_order", "fit", "flatten", "full_params", "info_nce", "learning_rate_schedule", "observe",
    "segment_bounds", "train", "training_stage", "unflatten",
]
