"""The engine: per-item caching, early cutoff, lost or corrupt content recomputed, dry-run reporting."""

import dataclasses
import pathlib

import numpy as np
import pytest
import toy_pipeline as toy

from cirkit.engine import CorruptionWarning, Engine, Pending, StageOutputError, Store, stage


def run_toy(store, **cfg):
    config = toy.ToyConfig(
        items=toy.ItemsConfig(**cfg.get("items", {})), embed=toy.EmbedConfig(**cfg.get("embed", {})),
        total=toy.SumConfig(**cfg.get("total", {})),
    )
    engine = Engine(store, progress=False)
    out = toy.toy.build(engine, config)
    return engine, out


def statuses(engine):
    return {s.step: s.status for s in engine.steps}


def test_second_run_is_all_hits(tmp_path):
    store = Store(str(tmp_path))
    e1, out1 = run_toy(store)
    assert set(statuses(e1).values()) == {"computed"}
    toy.CALLS["embed"] = 0
    e2, out2 = run_toy(store)
    assert set(statuses(e2).values()) == {"hit"} and toy.CALLS["embed"] == 0
    assert out2["metrics"].value == out1["metrics"].value


def test_adding_items_computes_only_the_new_ones(tmp_path):
    store = Store(str(tmp_path))
    _, small = run_toy(store, items={"n": 40})
    toy.CALLS["embed"] = 0
    engine, big = run_toy(store, items={"n": 47})
    assert toy.CALLS["embed"] == 7
    step = next(s for s in engine.steps if s.step == "embed")
    assert (step.items_cached, step.items_total) == (40, 47)
    assert np.array_equal(big["vectors"].value[:40], small["vectors"].value)
    fresh = Store(str(tmp_path / "fresh"))
    _, clean = run_toy(fresh, items={"n": 47})
    assert big["vectors"].content == clean["vectors"].content, "assembled value is independent of shard layout"


def test_early_cutoff_keeps_downstream_cached(tmp_path):
    store = Store(str(tmp_path))
    run_toy(store)
    # A config change that yields identical content (scale 1.0 -> 1 is the same float; delay is not in
    # the output) recomputes embed but leaves total cached.
    engine, _ = run_toy(store, embed={"delay": 0.001})
    assert statuses(engine) == {"make_items": "hit", "embed": "computed", "total": "hit"}


def test_changing_a_downstream_config_recomputes_only_downstream(tmp_path):
    store = Store(str(tmp_path))
    run_toy(store)
    engine, out = run_toy(store, total={"offset": 1.0})
    assert statuses(engine) == {"make_items": "hit", "embed": "hit", "total": "computed"}


def test_corrupt_array_is_warned_and_recomputed(tmp_path):
    store = Store(str(tmp_path))
    _, first = run_toy(store, items={"n": 200}, embed={"dim": 64})
    expected = first["metrics"].value
    chunks = [p for p in pathlib.Path(tmp_path, "arrays").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    for chunk in chunks:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    with pytest.warns(CorruptionWarning):
        engine, again = run_toy(store, items={"n": 200}, embed={"dim": 64}, total={"offset": 0.5})
        value = again["metrics"].value
    assert value["sum"] == pytest.approx(expected["sum"] + 0.5)
    assert store.get_value(first["vectors"].content) is not None


def test_corrupt_record_is_warned_and_recomputed(tmp_path):
    store = Store(str(tmp_path))
    e1, out = run_toy(store)
    key = next(s.key for s in e1.steps if s.step == "total")
    path = pathlib.Path(tmp_path, store.record_path(key))
    path.write_bytes(path.read_bytes().replace(b'"total"', b'"tota1"'))
    with pytest.warns(CorruptionWarning):
        e2, out2 = run_toy(store)
    assert statuses(e2)["total"] == "computed"
    assert out2["metrics"].value == out["metrics"].value
    assert store.get_record(key)["stage"] == "total"


def test_lost_value_is_recomputed_on_demand(tmp_path):
    store = Store(str(tmp_path))
    _, out = run_toy(store)
    expected = out["metrics"].value
    store.fs.remove(store.value_path(out["metrics"].content))
    engine, again = run_toy(store)
    assert again["metrics"].value == expected


def test_dry_run_reports_without_computing(tmp_path):
    store = Store(str(tmp_path))
    run_toy(store, items={"n": 40})
    engine = Engine(store, dry_run=True, progress=False)
    config = toy.ToyConfig(items=toy.ItemsConfig(n=45))
    out = toy.toy.build(engine, config)
    assert statuses(engine) == {"make_items": "miss", "embed": "pending", "total": "pending"}
    assert isinstance(out["metrics"], Pending)
    with pytest.raises(RuntimeError, match="dry run"):
        _ = out["metrics"].value
    # once the item list exists, a dry run counts cached items
    run_toy(store, items={"n": 45}, embed={"dim": 3})
    engine = Engine(store, dry_run=True, progress=False)
    toy.toy.build(engine, toy.ToyConfig(items=toy.ItemsConfig(n=45)))
    step = next(s for s in engine.steps if s.step == "embed")
    assert (step.status, step.items_cached, step.items_total) == ("partial", 40, 45)


@dataclasses.dataclass(frozen=True)
class Empty:
    pass


@stage(version=1, over="items", shard_size=3)
def wrong_length(config: Empty, items):
    return list(items)[:-1]


def test_wrong_output_length_is_a_clear_error(tmp_path):
    engine = Engine(Store(str(tmp_path)), progress=False)
    with pytest.raises(StageOutputError, match="2 outputs for 3 items"):
        engine.run(wrong_length, Empty(), items=("a", "b", "c"))


def test_config_must_be_frozen(tmp_path):
    @dataclasses.dataclass
    class Mutable:
        x: int = 1

    engine = Engine(Store(str(tmp_path)), progress=False)
    with pytest.raises(TypeError, match="frozen"):
        engine.run(toy.make_items, Mutable())


def test_duplicate_step_names_are_refused(tmp_path):
    engine = Engine(Store(str(tmp_path)), progress=False)
    engine.run(toy.make_items, toy.ItemsConfig())
    with pytest.raises(ValueError, match="twice"):
        engine.run(toy.make_items, toy.ItemsConfig(n=3))
