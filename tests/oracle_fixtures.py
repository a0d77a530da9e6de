"""The oracle world of tests/methods/test_oracle_world.py: a 2,000-pair built-in benchmark and a CLIP trained 150
steps of 128 on it (the README's oracle table is measured on this world). Built by a background job
(tests/prebuild.py) into its own store, so the module's tests find it cached."""

from pathlib import Path

from cirkit.builtin.benchmark import BuiltinConfig
from cirkit.builtin.files import ExportConfig
from cirkit.pipelines.setup import DataConfig, Setup
from cirkit.training.clip_trainer import TrainConfig

BENCHMARK = BuiltinConfig(n_train=2000, n_t2i=10, n_composed=80, n_chat=2, n_chat_distractors=2)
TRAIN = TrainConfig(steps=150, batch_size=128)


def oracle_setup(base: Path) -> Setup:
    return Setup(DataConfig(layout="cirr", max_queries=80), BENCHMARK, TRAIN, ExportConfig(str(base / "export")))


def build_world(base: Path) -> None:
    """The world's benchmark, CLIP and exported files in ``base / "store"`` (cached stages)."""
    from cirkit.engine import Engine, Store
    from cirkit.pipelines.setup import prepare

    prepare(Engine(Store(str(base / "store")), progress=False), oracle_setup(base), {})
