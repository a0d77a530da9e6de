"""CIR-LVLM and CIR-CoT end to end on the tiny built-in world with the embedded SmolLM2 (its first layer): train
on the generic trainer, export, embed through the encoder registry, score; a pooling change retrains from
the cached training data on; CIR-CoT's reasoning is a cached, readable output."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from cirkit.cli import main
from cirkit.engine import Store
from cirkit.notebook import Run

TINY = """pipeline = "{pipeline}"
name = "tiny-{pipeline}"
[setup.data]
max_queries = 4
layout = "cirr"
[train_data.split]
n_triplets = 32
[trainer]
steps = 4
batch_size = 8
checkpoint_every = 2
warmup_steps = 1
decay_steps = 10
[{section}.model]
llm_layers = 1
n_queries = 2
{extra}
"""

LVLM_POOL = "[lvlm.model.pool]\nsize = 6\nlength = 2\ntop_k = 2"


def run(exp, store, *args):
    result = CliRunner().invoke(main, ["run", str(exp), "--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def statuses(output: str) -> dict[str, str]:
    """step name -> status from a run's table (box characters stripped)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 3 and cells[2] in ("hit", "miss", "pending", "computed", "read", "reused"):
            rows[cells[0]] = cells[2]
    return rows


def test_cir_lvlm_trains_scores_and_a_pooling_change_reuses_the_training_data(smollm2_folder, builtin_world,
                                                                             tmp_path):
    exp = tmp_path / "lvlm.toml"
    exp.write_text(TINY.format(pipeline="cir_lvlm", section="lvlm", extra=LVLM_POOL) + builtin_world["setup"])
    store = builtin_world["store"]
    run(exp, store, "--quiet")
    record = json.loads((store / "runs" / "tiny-cir_lvlm.json").read_text())
    assert {"R@1", "R@5", "R@10", "R@50", "Rs@1"} <= set(record["metrics"])
    steps = {s["step"] for s in record["steps"]}
    segments = sorted(s for s in steps if s.startswith("train_cir_lvlm"))
    assert len(segments) == 2, segments  # 4 steps, a checkpoint every 2: two cached, resumable segments
    assert {"cir_lvlm/embed_queries", "cir_lvlm/embed_gallery"} <= steps

    dry = statuses(run(exp, store, "--dry-run", "--set", 'lvlm.model.pooling="mean"'))
    # what the pooling cannot change stays cached: the world, the train split, the frozen features and tokens
    for step in ("generate_builtin", "train/generate_builtin_train", "training_triplets"):
        assert dry[step] == "hit", (step, dry)
    # and the training (pooling shapes the gradients) and everything after it recomputes
    assert all(dry[s] in ("miss", "pending") for s in segments) and dry["export_cir_lvlm"] in ("miss", "pending"), dry
    unchanged = statuses(run(exp, store, "--dry-run"))
    assert "miss" not in unchanged.values() and "pending" not in unchanged.values(), unchanged


def test_cir_cot_reasoning_is_cached_per_query_and_readable(smollm2_folder, builtin_world, tmp_path):
    exp = tmp_path / "cot.toml"
    exp.write_text(TINY.format(pipeline="cir_cot", section="cot", extra="[cot]\nmax_cot_tokens = 8")
                   + builtin_world["setup"])
    store = builtin_world["store"]
    run(exp, store, "--quiet")
    record = json.loads((store / "runs" / "tiny-cir_cot.json").read_text())
    assert {"R@1", "Rs@1"} <= set(record["metrics"])
    reasoning = Run(Store(str(store)), "tiny-cir_cot").output("reasoning")
    assert len(reasoning) == 4 and all(isinstance(r, str) for r in reasoning)  # one chain of thought per query
    step = next(s for s in record["steps"] if s["step"] == "cir_cot/reasoning")
    shown = CliRunner().invoke(main, ["show", step["key"][:12], "--store", str(store)], catch_exceptions=False)
    assert shown.exit_code == 0 and "generate_cot" in shown.output, shown.output
    again = statuses(run(exp, store, "--dry-run"))
    assert again["cir_cot/reasoning"] == "hit", again
