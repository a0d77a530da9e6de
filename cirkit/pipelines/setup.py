"""Where a method's data, CLIP and models come from: the embedded default world, or real files and servers.

The data selection (benchmark, split, FashionIQ categories, GeneCIS tasks, query cuts, what to do about
missing images) is explicit config, recorded with every run. A selection may have several *parts* (FashionIQ
categories, GeneCIS tasks), each with its own gallery; methods run once per part (see ``parts.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from .. import config_checks as checks
from ..builtin.benchmark import BuiltinConfig
from ..builtin.files import ExportConfig
from ..builtin.stages import checkpoint_ref
from ..data.errors import DataError
from ..data.loaders import fashioniq, genecis
from ..data.selection import MissingImagesConfig, apply_image_policy, selection_report
from ..data.stage import BenchmarkConfig, load_benchmark
from ..encoders.stages import EmbedConfig
from ..engine import Artifact, Engine
from ..methods.common import SubsetConfig, take_queries
from ..models.config import BackendConfig
from ..models.prompts import PromptConfig
from ..models.requests import Decoding
from ..models.roles import EngineRoles, RoleConfig
from ..retrieval.scann_index import ScannConfig
from ..training.clip_trainer import TrainConfig
from .embedded import builtin_world, embedded_reasoner, load_layout
from .parts import Part, PrefixedEngine

__all__ = ["Setup", "DataConfig", "prepare", "require_composed", "clip_substitute", "embedded_llm", "oracle", "with_oracle_noise", "role",
           "benchmark_of", "task_of", "has_ground_truth"]

# the built-in benchmark's layouts and the benchmark whose protocol each follows
BUILTIN_LAYOUTS = {"t2i": "builtin", "cirr": "cirr", "circo": "circo", "chat": "visdial"}
FILE_LAYOUTS = ("cirr", "circo", "fashioniq", "genecis", "flickr30k", "mscoco", "visdial")
DEFAULT_SPLIT = {"cirr": "val", "circo": "val", "fashioniq": "val", "flickr30k": "test", "mscoco": "test"}
NO_GROUND_TRUTH = {("cirr", "test1"), ("circo", "test"), ("fashioniq", "test")}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``builtin``: the built-in benchmark in the ``layout``'s format; ``files``: a real benchmark under ``root``
    read by the loader named ``layout``, with the CLIPModel folder ``clip``."""

    source: Literal["builtin", "files"] = "builtin"
    layout: str = "cirr"
    root: str = ""
    split: str = ""  # "": the benchmark's evaluation split (val; Flickr30K/MSCOCO test)
    clip: str = ""
    category: str | tuple[str, ...] = ()  # FashionIQ: one or several of dress/shirt/toptee; (): all three + average
    task: str | tuple[str, ...] = ()  # GeneCIS: one or several of its four tasks; (): all four + average
    max_queries: int = 0  # 0: all; else the first N (per part)
    val_cut: int = 0  # CIRR val only: the first N queries as some papers evaluate (ImageScope: 2400); 0: all
    missing_images: Literal["fail", "skip"] = "fail"  # skip: drop them and the queries they touch (counted)
    join: str = "{c0} and {c1}"  # FashionIQ caption join (the CIR papers' choice on val)
    strip_captions: bool = False  # FashionIQ
    images_root: str = ""  # the image folder relative to root (or absolute); "" = the layout's own

    def __post_init__(self) -> None:
        checks.integers_at_least(self, 0, "max_queries")
        if self.source == "files" and not self.root:
            checks.fail(self, "root", "the benchmark's folder (source = 'files')", self.root)


@dataclasses.dataclass(frozen=True)
class Setup:
    data: DataConfig = DataConfig()
    benchmark: BuiltinConfig = BuiltinConfig()
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig()
    embed: EmbedConfig = EmbedConfig()
    scann: ScannConfig = ScannConfig()  # used when a method's retrieval.backend = "scann"
    oracle_noise: float | None = None  # set: the noise of every oracle role (one knob for a sweep)


def clip_substitute(prompt: str) -> RoleConfig:
    """A vision role answered by CLIP substitutes on the embedded CLIP (``model = ""``)."""
    return RoleConfig(BackendConfig("clip"), PromptConfig(prompt))


def embedded_llm(prompt: str, max_tokens: int = 160) -> RoleConfig:
    """A text role answered by the embedded SmolLM2 (``model = ""``) through the local transformers backend."""
    return RoleConfig(BackendConfig("transformers", batch_size=8), PromptConfig(prompt), Decoding(max_tokens=max_tokens))


def oracle(prompt: str, noise: float = 0.0) -> RoleConfig:
    """A role answered from the built-in benchmark's ground truth (``model = ""``: the world's folder)."""
    return RoleConfig(BackendConfig("oracle", noise=noise), PromptConfig(prompt))


def with_oracle_noise(config):
    """``config`` with ``setup.oracle_noise`` as the noise of each of its oracle roles (unchanged if unset)."""
    noise = config.setup.oracle_noise
    if noise is None:
        return config
    changes = {f.name: dataclasses.replace(v, backend=dataclasses.replace(v.backend, noise=float(noise)))
               for f in dataclasses.fields(config) if isinstance(v := getattr(config, f.name), RoleConfig)
               and v.backend.kind == "oracle"}
    return dataclasses.replace(config, **changes)


role = RoleConfig


def benchmark_of(data: DataConfig) -> str:
    """The benchmark whose protocol (reference exclusion, subsets, metrics) the selected data follows."""
    if data.source == "builtin":
        if data.layout not in BUILTIN_LAYOUTS:
            raise DataError(f"setup.data.layout: the built-in benchmark has layouts {', '.join(BUILTIN_LAYOUTS)}, "
                            f"not {data.layout!r}")
        return BUILTIN_LAYOUTS[data.layout]
    if data.layout not in FILE_LAYOUTS:
        raise DataError(f"setup.data.layout: expected one of {', '.join(FILE_LAYOUTS)}, found {data.layout!r}")
    return data.layout


def task_of(data: DataConfig) -> Literal["composed", "t2i", "chat"]:
    benchmark = benchmark_of(data)
    if benchmark in ("cirr", "circo", "fashioniq", "genecis"):
        return "composed"
    return "chat" if benchmark == "visdial" else "t2i"


def require_composed(method: str, setup: Setup) -> None:
    """A clear error when a composed-retrieval method is pointed at text-to-image or chat data."""
    if task_of(setup.data) != "composed":
        raise DataError(f"{method} is a composed-retrieval method; setup.data.layout {setup.data.layout!r} is not "
                        f"composed (use cirr, circo, fashioniq or genecis)")


def split_of(data: DataConfig) -> str:
    return data.split or DEFAULT_SPLIT.get(benchmark_of(data), "val")


def has_ground_truth(data: DataConfig) -> bool:
    """False on splits scored only by a benchmark's server: the run ends in submission files."""
    return (benchmark_of(data), split_of(data)) not in NO_GROUND_TRUTH


def _names(value: str | tuple[str, ...], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    for n in names:
        if n not in known:
            raise DataError(f"setup.data.{what}: expected one of {', '.join(known)}, found {n!r}")
    return names or known


def benchmark_configs(data: DataConfig) -> list[tuple[str, BenchmarkConfig]]:
    """(part name, loader config) per part of the selection; a single part is named ""."""
    name, split = benchmark_of(data), split_of(data)
    if data.category and name != "fashioniq":
        raise DataError(f"setup.data.category is a FashionIQ option; layout {name!r} has no categories")
    if data.task and name != "genecis":
        raise DataError(f"setup.data.task is a GeneCIS option; layout {name!r} has no tasks")
    if name == "fashioniq":
        if split == "test":
            raise DataError("setup.data.split: FashionIQ test has no public ground truth and no evaluation server; "
                            "evaluate on 'val'")
        cats = _names(data.category, fashioniq.CATEGORIES, "category")
        return [(c if len(cats) > 1 else "", BenchmarkConfig("fashioniq", split=split, category=c, join=data.join,
                                                             strip_captions=data.strip_captions,
                                                             images_dir=data.images_root or None)) for c in cats]
    if name == "genecis":
        tasks = _names(data.task, genecis.TASKS, "task")
        return [(t if len(tasks) > 1 else "", BenchmarkConfig("genecis", task=t)) for t in tasks]
    images_root = data.images_root or None
    if name in ("cirr", "circo"):
        return [("", BenchmarkConfig(name, split=split, images_root=images_root))]
    if name == "visdial":
        return [("", BenchmarkConfig("visdial", images_root=images_root))]
    return [("", BenchmarkConfig(name, split=split, images_dir=images_root))]


def query_limit(data: DataConfig) -> int:
    """The number of leading queries to keep (0: all): ``max_queries`` and, on CIRR val, ``val_cut``."""
    limits = [data.max_queries]
    if benchmark_of(data) == "cirr" and split_of(data) == "val":
        limits.append(data.val_cut)
    limits = [n for n in limits if n > 0]
    return min(limits) if limits else 0


def _select(engine: Engine, data: DataConfig, split: Artifact) -> tuple[Artifact, Artifact]:
    selected = engine.run(take_queries, SubsetConfig(query_limit(data)), split=split)
    kept = engine.run(apply_image_policy, MissingImagesConfig(data.missing_images), split=selected,
                      step="check_images")
    return kept, engine.run(selection_report, None, selected=selected, kept=kept, step="selection")


def prepare(engine: Engine, setup: Setup, roles: dict[str, RoleConfig]) -> tuple[list[Part], Artifact]:
    """(the parts of the data selection, each with its roles wired to the right model folders; the CLIP
    checkpoint)."""
    data = setup.data
    benchmark_of(data)
    world = None
    if data.source == "builtin":
        if data.category or data.task:
            raise DataError("setup.data.category and task select FashionIQ categories and GeneCIS tasks; the built-in "
                            "benchmark has neither (set source = \"files\")")
        world = builtin_world(engine, setup.benchmark, setup.train, setup.export)
        loaded, clip = [("", load_layout(engine, world, data.layout, step="load"))], world.clip
    else:
        configs = benchmark_configs(data)
        loaded = [(name, PrefixedEngine(engine, name).run(load_benchmark, cfg, root=data.root, step="load"))
                  for name, cfg in configs]
        clip = engine.run(checkpoint_ref, None, directory=data.clip)
    folders, reasoner = {}, None
    for name, cfg in roles.items():
        if cfg.backend.model:
            continue
        if cfg.backend.kind == "clip":
            folders[name] = world.clip_folder if world else data.clip
        elif cfg.backend.kind == "oracle":  # the ground truth of the benchmark folder itself
            folders[name] = world.root if world else data.root
        elif cfg.backend.kind == "transformers":
            reasoner = reasoner or embedded_reasoner(engine, setup.export)
            folders[name] = reasoner
    parts = []
    for name, split in loaded:
        scoped = PrefixedEngine(engine, name)
        kept, report = _select(scoped, data, split)
        parts.append(Part(name, scoped, kept, report, EngineRoles(scoped, folders, clip)))
    return parts, clip
