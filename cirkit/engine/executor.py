"""The engine: resolves a stage call against the store, computes only what is missing, records it.

A call's key is the digest of the stage identity, the config and the *content hashes* of its inputs, so
an upstream recompute that yields identical content leaves everything downstream cached (early cutoff).
Item-mapping stages are resolved per item inside a namespace (stage identity + config + the other
inputs), computed in shards that are published as they finish, and assembled without copying (or, from
more than ``PACK_PARTS`` shards, stored whole with one shard file naming every item: a pack).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .codec import describe
from .fingerprint import short_deps
from .hashing import digest
from .partial import PartialShard
from .progress import Progress
from .provenance import package_versions
from .stage import Stage
from .store import MissingContent, Store, assemble, gather_runs, shard_index
from .streaming import StreamOutputError, publish_stream

__all__ = ["Engine", "Artifact", "Pending", "Step", "StageOutputError", "PACK_PARTS"]

PACK_PARTS = 64  # an item stage's output assembled from more stored parts than this is packed (Engine._pack)


class StageOutputError(ValueError):
    """A stage returned something the engine cannot cache (wrong length, unstorable type)."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A stored stage output: the record ``key`` that produced it and its ``content`` hash."""

    key: str
    content: str
    engine: "Engine" = dataclasses.field(repr=False, compare=False)

    @property
    def value(self) -> Any:
        return self.engine.load(self)


@dataclasses.dataclass(frozen=True)
class Pending:
    """In a dry run: the output of a stage that would be computed, so its content is not known yet."""

    step: str

    @property
    def value(self) -> Any:
        raise RuntimeError(f"the output of step {self.step!r} is not computed in a dry run")


@dataclasses.dataclass
class Step:
    """What happened to one stage call in a run (kept in the run record, shown by dry runs)."""

    step: str
    stage: str
    version: int | str
    code: str
    key: str | None
    config: Any
    inputs: dict[str, str | None]
    input_keys: dict[str, str]
    status: str = "hit"  # hit | computed | miss | partial | pending | read (a volatile stage)
    items_cached: int | None = None
    items_total: int | None = None
    seconds: float = 0.0
    output: str | None = None
    report: dict | None = None  # what the output says about itself (e.g. parse fallbacks), from its record
    config_hash: str = ""
    deps: dict[str, str] = dataclasses.field(default_factory=dict)  # code reached -> short digest (explains misses)
    environment: dict[str, str] = dataclasses.field(default_factory=dict)  # keyed distribution -> version

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class LocalExecutor:
    """Runs shards one after another in this process (the default)."""

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, task in enumerate(tasks):
            yield i, fn(task)


class Engine:
    """Runs stages against one store. ``dry_run`` resolves keys and reports without computing."""

    def __init__(
        self, store: Store, *, dry_run: bool = False, progress: bool = True, executor: Any = None,
    ) -> None:
        self.store = store
        self.dry_run = dry_run
        self.progress = Progress(enabled=progress)
        self.executor = executor or LocalExecutor()
        self.steps: list[Step] = []
        self._memo: dict[str, Any] = {}
        self._producers: dict[str, Callable[[], Artifact]] = {}

    # ------------------------------------------------------------------ loading
    def load(self, artifact: Artifact) -> Any:
        """The value of an artifact; a corrupt or vanished value is recomputed by the step that made it."""
        if artifact.content not in self._memo:
            try:
                self._memo[artifact.content] = self.store.get_value(artifact.content)
            except MissingContent:
                producer = self._producers.get(artifact.content)
                if producer is None or self.dry_run:
                    raise
                redone = producer()
                if redone.content != artifact.content:
                    raise StageOutputError(
                        f"recomputing a lost output gave different content ({redone.content[:12]} instead of "
                        f"{artifact.content[:12]}); the stage that makes it is not deterministic"
                    ) from None
                if artifact.content not in self._memo:
                    self._memo[artifact.content] = self.store.get_value(artifact.content)
        return self._memo[artifact.content]

    def _input_value(self, value: Any) -> Any:
        """An input's value; artifacts nested in tuples, lists and dicts are loaded in place."""
        if isinstance(value, Artifact):
            return value.value
        if isinstance(value, (tuple, list)) and _has_artifacts(value):
            return type(value)(self._input_value(v) for v in value)
        if isinstance(value, dict) and _has_artifacts(value):
            return {k: self._input_value(v) for k, v in value.items()}
        return value

    # ------------------------------------------------------------------ running
    def run(self, stage: Stage, config: Any, *, step: str | None = None, **inputs: Any) -> Artifact | Pending:
        """Resolve one stage call: a cached artifact, a fresh computation, or (dry run) a pending result."""
        stage.check_config(config)
        missing = set(stage.input_names) - set(inputs)
        extra = set(inputs) - set(stage.input_names)
        if missing or extra:
            raise TypeError(f"stage {stage.name}: missing inputs {sorted(missing)}, unexpected {sorted(extra)}")
        name = step or stage.name
        if any(s.step == name for s in self.steps):
            raise ValueError(f"step name {name!r} is used twice in this run; pass step=... to tell them apart")
        hashes = {k: self._content_of(v) for k, v in inputs.items()}
        info = Step(
            step=name, stage=stage.name, version=stage.version, code=stage.code, key=None,
            config=describe(config), inputs=hashes,
            input_keys=dict(_artifact_keys(inputs)), deps=short_deps(stage.analysis.deps),
            environment=stage.environment,
        )
        self.steps.append(info)
        if any(h is None for h in hashes.values()):
            info.status = "pending"
            return Pending(name)
        info.config_hash = config_hash = digest(config)
        info.key = key = digest({"stage": stage.identity, "config": config_hash, "inputs": hashes})
        if stage.volatile:
            if self.dry_run:  # read the world to know the content, but store nothing
                output = stage.fn(config, **{k: self._input_value(v) for k, v in inputs.items()})
                content = digest(output)
                self._memo[content] = output
                info.status, info.output = "read", content
                return Artifact(key, content, self)
            artifact = self._compute(stage, config, inputs, info)
            info.status = "read"
            return artifact
        record = self.store.get_record(key)
        if record is not None and self.store.has_value(record["output"]):
            info.status, info.output, info.report = "hit", record["output"], record.get("report")
            artifact = Artifact(key, record["output"], self)
            self._producers.setdefault(artifact.content, lambda: self._compute(stage, config, inputs, info))
            return artifact
        if self.dry_run:
            info.status = "miss"
            if stage.over is not None:
                self._count_cached_items(stage, config_hash, inputs, hashes, info)
            return Pending(name)
        artifact = self._compute(stage, config, inputs, info)
        self._producers.setdefault(artifact.content, lambda: self._compute(stage, config, inputs, info))
        return artifact

    def _content_of(self, value: Any) -> str | None:
        """An input's content hash (None while pending); a structure holding artifacts hashes their contents."""
        if isinstance(value, Artifact):
            return value.content
        if isinstance(value, Pending):
            return None
        if not _has_artifacts(value):
            return digest(value)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        parts = {str(k): self._content_of(v) for k, v in items}
        if any(v is None for v in parts.values()):
            return None
        return digest({"artifacts": parts, "kind": type(value).__name__})

    def _compute(self, stage: Stage, config: Any, inputs: dict, info: Step) -> Artifact:
        start = time.perf_counter()
        values = {k: self._input_value(v) for k, v in inputs.items()}
        if stage.over is None:
            output = self.store.spill(stage.fn(config, **values))  # streamed arrays written as they come
            content = self.store.put_value(output)
            self._memo[content] = output  # also serves a value the store holds but cannot give back
            extra: dict[str, Any] = {}
            report = getattr(output, "cirkit_report", None)
            if callable(report):
                extra["report"] = info.report = report()
        else:
            content, extra = self._compute_items(stage, config, values, inputs, info)
        info.seconds = time.perf_counter() - start
        info.status, info.output = "computed", content
        record = {
            "kind": "map" if stage.over else "stage", "stage": stage.name, "version": stage.version,
            "code": stage.code, "config": describe(config), "config_hash": info.config_hash,
            "code_deps": info.deps, "environment": info.environment,
            "inputs": info.inputs, "input_keys": info.input_keys, "output": content,
            "seconds": round(info.seconds, 6), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": package_versions(), **extra,
        }
        self.store.put_record(info.key, record)
        return Artifact(info.key, content, self)

    # ------------------------------------------------------------------ item-mapping stages
    def _namespace(self, stage: Stage, config_hash: str, hashes: dict[str, str]) -> str:
        others = {k: v for k, v in hashes.items() if k != stage.over}
        return digest({"stage": stage.identity, "config": config_hash, "inputs": others})

    def _items(self, stage: Stage, values_or_inputs: dict) -> Sequence[Any]:
        items = self._input_value(values_or_inputs[stage.over])
        if not isinstance(items, (list, tuple, np.ndarray)):
            raise StageOutputError(f"stage {stage.name}: input {stage.over!r} must be a sequence of items")
        return items

    def _count_cached_items(self, stage: Stage, config_hash: str, inputs: dict, hashes: dict, info: Step) -> None:
        try:
            items = self._items(stage, inputs)
        except MissingContent:
            return
        index = self.store.item_index(self._namespace(stage, config_hash, hashes))
        info.items_total = len(items)
        info.items_cached = sum(1 for item in items if stage.item_digest(item) in index)
        if info.items_cached:
            info.status = "partial"

    def _compute_items(self, stage: Stage, config: Any, values: dict, inputs: dict, info: Step) -> tuple[str, dict]:
        namespace = self._namespace(stage, info.config_hash, info.inputs)
        items = self._items(stage, values)
        item_keys = [stage.item_digest(item) for item in items]
        # Shards this process computes are kept (document and value) so that assembling does not read back and
        # re-hash what was just written; shards computed elsewhere (another process, Ray workers) are read.
        fresh: dict[str, tuple[dict, Any]] = {}
        for _attempt in range(3):
            docs = self.store.namespace_shards(namespace)
            index = shard_index(docs)
            todo: dict[str, int] = {}
            for i, k in enumerate(item_keys):
                if k not in index and k not in todo:
                    todo[k] = i
            info.items_total, info.items_cached = len(items), len(items) - len(todo)
            self._run_shards(stage, config, values, items, namespace, list(todo.items()), fresh)
            for shard, (doc, _) in fresh.items():
                if docs.setdefault(shard, doc) is doc:
                    shard_index({shard: doc}, index)
            if any(k not in index for k in todo):  # computed out of this process: read what it wrote
                docs = self.store.namespace_shards(namespace)
                index = shard_index(docs)
            try:
                parts = {doc["value"]: value for doc, value in fresh.values()}
                return self._assemble(namespace, item_keys, index, docs, parts), {"namespace": namespace}
            except _LostShards as lost:  # corrupt or vanished shards: forget them and redo their items
                for shard in lost.shards:
                    self.store.drop_shard(namespace, shard)
        raise StageOutputError(f"stage {stage.name}: shards keep failing their integrity checks")

    def _run_shards(self, stage, config, values, items, namespace, todo: list[tuple[str, int]],
                    fresh: dict[str, tuple[dict, Any]]) -> None:
        if not todo:
            return
        size = stage.shard_size
        tasks = [todo[i : i + size] for i in range(0, len(todo), size)]
        others = {k: v for k, v in values.items() if k != stage.over}
        if stage.stream:  # one call over every missing item, in this process whatever the executor (see .streaming)
            keys = [k for k, _ in todo]
            outputs = stage.fn(config, **{stage.over: tuple(items[i] for _, i in todo)}, **others)
            def put(shard_keys: list[str], shard_value: tuple) -> None:
                shard, doc = self.store.write_shard(namespace, shard_keys, shard_value)
                fresh[shard] = (doc, shard_value)  # assembled from memory, like the shards of compute() below

            with self.progress.bar(f"{info_label(stage)}", total=len(todo)) as advance:
                try:
                    publish_stream(outputs, keys, size, put, advance, stage.name)
                except StreamOutputError as exc:
                    raise StageOutputError(str(exc)) from None
            return

        def compute(task: list[tuple[str, int]]) -> int:
            batch = tuple(items[i] for _, i in task)
            try:
                out = stage.fn(config, **{stage.over: batch}, **others)
            except PartialShard as partial:  # keep the items that finished, then fail as the stage did
                rows = sorted(i for i in partial.done if 0 <= i < len(task))
                if rows:
                    self.store.put_shard(namespace, [task[i][0] for i in rows], tuple(partial.done[i] for i in rows))
                raise partial.error from None
            if len(out) != len(batch):
                raise StageOutputError(f"stage {stage.name} returned {len(out)} outputs for {len(batch)} items")
            shard_value = np.asarray(out) if isinstance(out, np.ndarray) else tuple(out)
            shard, doc = self.store.write_shard(namespace, [k for k, _ in task], shard_value)
            fresh[shard] = (doc, shard_value)  # in a Ray worker this is the worker's copy: the driver reads instead
            return len(task)

        with self.progress.bar(f"{info_label(stage)}", total=len(todo)) as advance:
            for _, done in self.executor.map(compute, tasks):
                advance(done)

    def _assemble(self, namespace: str, item_keys: list[str], index: dict, docs: dict[str, dict],
                  in_memory: dict[str, Any]) -> str:
        """The gather of every item's row; ``docs`` are shard documents already read and checked, ``in_memory``
        the values this process just computed and stored (by content hash), so neither is read again."""
        shard_values: dict[str, str] = {}
        parts: list[str] = []
        part_of: dict[str, int] = {}
        rows: list[tuple[int, int]] = []
        shards_of: dict[str, set[str]] = {}
        lost: set[str] = set()
        for k in item_keys:
            ref = index[k]
            if ref.shard not in shard_values:
                doc = docs.get(ref.shard) or self.store.get_shard(namespace, ref.shard)
                if doc is None:
                    lost.add(ref.shard)
                    continue
                shard_values[ref.shard] = doc["value"]
            value_hash = shard_values[ref.shard]
            shards_of.setdefault(value_hash, set()).add(ref.shard)
            if value_hash not in part_of:
                part_of[value_hash] = len(parts)
                parts.append(value_hash)
            rows.append((part_of[value_hash], ref.row))
        loaded = []
        for p in parts:
            if p in in_memory:
                loaded.append(in_memory[p])
                continue
            try:
                loaded.append(self.store.get_value(p))
            except MissingContent:
                lost |= shards_of[p]
        if lost:
            raise _LostShards(lost)
        runs = gather_runs(rows)
        assembled = assemble(loaded, runs)
        content = digest(assembled)
        self._memo[content] = assembled
        if len(parts) > PACK_PARTS:
            return self._pack(namespace, item_keys, assembled, content)
        return self.store.put_gather(parts, runs, content)

    def _pack(self, namespace: str, item_keys: list[str], assembled: Any, content: str) -> str:
        """Store an output assembled from many shards whole, then one shard file naming all its items: the
        output loads as one value instead of thousands, and the items' index is one file once ``cirkit gc`` has
        removed the small shards. Those stay until then: an earlier record's gathered output may need them
        (verify and pull require every part of a gather to be provided by a shard file)."""
        self.store.put_value(assembled, content)
        self.store.index_shard(namespace, list(item_keys), content)
        return content


def _has_artifacts(value: Any) -> bool:
    if isinstance(value, (Artifact, Pending)):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_artifacts(v) for v in value)
    if isinstance(value, dict):
        return any(_has_artifacts(v) for v in value.values())
    return False


def _artifact_keys(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(name, record key) of every artifact in the inputs, nested ones named like ``rankings[2]``."""
    if isinstance(value, Artifact):
        yield prefix, value.key
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _artifact_keys(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _artifact_keys(v, f"{prefix}[{i}]")


class _LostShards(Exception):
    def __init__(self, shards: set[str]) -> None:
        super().__init__(f"{len(shards)} shards lost")
        self.shards = shards


def info_label(stage: Stage) -> str:
    return f"{stage.name} ({stage.over})"
