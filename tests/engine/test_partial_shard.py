"""A shard that fails in part keeps the items that finished (paid-for model calls) and stores nothing for the
items that failed: the rerun computes exactly the failed ones."""

import dataclasses

import pytest

from cirkit.engine import Engine, PartialShard, Store, stage

BROKEN = {"on": True}
COMPUTED: list[str] = []


@dataclasses.dataclass(frozen=True)
class Upper:
    pass


@stage(version=1, over="items", shard_size=8)
def shout(config: Upper, items):
    done, failed = {}, None
    for i, item in enumerate(items):
        COMPUTED.append(item)
        if BROKEN["on"] and item.startswith("bad"):
            failed = failed or RuntimeError(f"cannot shout {item}")
        else:
            done[i] = item.upper()
    if failed:
        raise PartialShard(done, failed)
    return tuple(done[i] for i in range(len(items)))


def test_a_partly_failed_shard_keeps_what_finished_and_reruns_only_what_failed(tmp_path):
    store = Store(str(tmp_path))
    items = ("a", "bad1", "b", "c", "d", "bad2")
    BROKEN["on"] = True
    with pytest.raises(RuntimeError, match="cannot shout bad1"):
        Engine(store, progress=False).run(shout, Upper(), items=items)
    BROKEN["on"] = False
    COMPUTED.clear()
    engine = Engine(store, progress=False)
    out = engine.run(shout, Upper(), items=items)
    assert out.value == ("A", "BAD1", "B", "C", "D", "BAD2")
    assert sorted(COMPUTED) == ["bad1", "bad2"], "the finished items were kept; nothing was stored for a failure"
    assert (engine.steps[-1].items_cached, engine.steps[-1].items_total) == (4, 6)
