"""Streaming item stages: one call over every missing item, outputs published in shards as they arrive (in any
order), and what arrived before a failure or an interrupt is kept, so a rerun computes only the rest."""

import dataclasses

import pytest

from cirkit.engine import Engine, StageDefinitionError, StageOutputError, Store, stage

CALLS: list[tuple[str, ...]] = []
FAIL_AFTER = {"n": None, "error": RuntimeError}


@dataclasses.dataclass(frozen=True)
class Upper:
    pass


@stage(version=1, over="items", shard_size=3, stream=True)
def shout(config: Upper, items):
    """Yields the items back to front (out of order on purpose); fails after FAIL_AFTER["n"] outputs."""
    CALLS.append(tuple(items))
    for n, i in enumerate(reversed(range(len(items)))):
        if FAIL_AFTER["n"] is not None and n == FAIL_AFTER["n"]:
            raise FAIL_AFTER["error"](f"stopped after {n}")
        yield i, items[i].upper()


@pytest.fixture(autouse=True)
def reset():
    CALLS.clear()
    FAIL_AFTER.update(n=None, error=RuntimeError)


def shard_sizes(store, engine):
    namespace = engine.store.get_record(engine.steps[-1].key)["namespace"]
    return sorted(len(store.get_shard(namespace, s)["items"]) for s in store.shard_ids(namespace))


def test_one_call_over_all_items_assembled_in_item_order_and_published_in_shards(tmp_path):
    store = Store(str(tmp_path))
    engine = Engine(store, progress=False)
    items = tuple("abcdefg")
    assert engine.run(shout, Upper(), items=items).value == tuple("ABCDEFG")
    assert CALLS == [items], "a streaming stage is called once with every missing item"
    assert shard_sizes(store, engine) == [1, 3, 3]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_what_arrived_before_a_failure_or_an_interrupt_is_kept(tmp_path, error):
    store = Store(str(tmp_path))
    items = tuple("abcdefg")
    FAIL_AFTER.update(n=5, error=error)
    with pytest.raises(error, match="stopped after 5"):
        Engine(store, progress=False).run(shout, Upper(), items=items)
    FAIL_AFTER["n"] = None
    CALLS.clear()
    engine = Engine(store, progress=False)
    assert engine.run(shout, Upper(), items=items).value == tuple("ABCDEFG")
    assert CALLS == [("a", "b")], "the five outputs that arrived (g..c) were stored, four of them before a full shard"
    assert (engine.steps[-1].items_cached, engine.steps[-1].items_total) == (5, 7)


@stage(version=1, over="items", stream=True)
def repeats(config: Upper, items):
    for i in range(len(items)):
        yield 0, items[i]


@stage(version=1, over="items", stream=True)
def forgets(config: Upper, items):
    yield 0, items[0]


def test_a_repeated_or_missing_position_is_an_error(tmp_path):
    with pytest.raises(StageOutputError, match="repeats yielded position 0: not a new item of its 2"):
        Engine(Store(str(tmp_path / "a")), progress=False).run(repeats, Upper(), items=("x", "y"))
    with pytest.raises(StageOutputError, match="forgets yielded 1 outputs for 2 items"):
        Engine(Store(str(tmp_path / "b")), progress=False).run(forgets, Upper(), items=("x", "y"))


def test_only_item_mapping_stages_stream():
    with pytest.raises(StageDefinitionError, match="only an item-mapping stage"):
        stage(version=1, stream=True)(lambda config, items: None)
