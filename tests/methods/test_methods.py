"""CIReVL, OSrCIR and ImageScope on a tiny built-in benchmark with the embedded backends, and the stage-level
logic of ImageScope's re-ranking checked on hand-made inputs."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cirkit.cli import main
from cirkit.methods.imagescope.stages import RerankConfig, promote_first_accepted, rerank_by_propositions
from cirkit.models.roles import Answers
from cirkit.retrieval.ranking import Ranking


def ranking(rows):
    indices = np.array(rows, np.int64)
    return Ranking(tuple(str(i) for i in range(len(rows))), tuple(f"g{i}" for i in range(10)), indices,
                   -np.arange(indices.size, dtype=np.float32).reshape(indices.shape))


def answers(values):
    n = len(values)
    return Answers(tuple(values), (True,) * n, ("",) * n, (None,) * n, ("m",) * n)


def test_stage2_stable_rerank_by_matching_propositions():
    r = ranking([[5, 6, 7, 8]])
    props = answers([{"propositions": [{"question": "a dog?", "answer": "yes"}, {"question": "a cat?", "answer": "no"}]}])
    # verdicts per candidate (a dog?, a cat?): 5 -> (no, no)=1, 6 -> (yes, no)=2, 7 -> (yes, yes)=1, 8 -> (yes, no)=2
    verdicts = answers([False, False, True, False, True, True, True, False])
    out = rerank_by_propositions(RerankConfig(top_k=4), r, props, verdicts)
    assert out.indices.tolist() == [[6, 8, 5, 7]], "more matches first; ties keep retrieval order"


def test_stage3_promotes_the_first_accepted_of_the_top_alpha():
    r = ranking([[1, 2, 3, 4], [5, 6, 7, 8], [0, 9, 3, 4]])
    verdicts = answers([False, True, True, False, False, False, True, False, False])
    out = promote_first_accepted(RerankConfig(alpha=3), r, verdicts)
    assert out.indices.tolist() == [[2, 1, 3, 4], [5, 6, 7, 8], [0, 9, 3, 4]]


# Two queries: every stage still runs on a batch (so ordering between items matters), at half the model calls.
TINY = """pipeline = "{pipeline}"
name = "tiny-{pipeline}-{layout}"
{extra}
[setup.data]
max_queries = 2
layout = "{layout}"
"""


SHORT = "[reasoner.decoding]\nmax_tokens = 12\n[propositions.decoding]\nmax_tokens = 12"


@pytest.mark.parametrize("pipeline,layout,extra", [
    ("osrcir", "cirr", ""),
    ("cirevl", "cirr", "[reasoner.decoding]\nmax_tokens = 12"),
    ("imagescope", "cirr", SHORT),
    ("imagescope", "t2i", SHORT),
    # one follow-up round: round 1 already reads round 0's description (the oracle world checks longer chains)
    ("imagescope", "chat", "chat_rounds = 1\n" + SHORT),
    ("ldre", "cirr", "captions = 2\nrewrites = 2\n[reasoner.decoding]\nmax_tokens = 12"),
])
def test_methods_run_end_to_end_on_the_embedded_backends(pipeline, layout, extra, smollm2_folder, builtin_world,
                                                        tmp_path):
    exp = tmp_path / f"{pipeline}.toml"
    exp.write_text(TINY.format(pipeline=pipeline, extra=extra, layout=layout) + builtin_world["setup"])
    store = builtin_world["store"]
    result = CliRunner().invoke(main, ["run", str(exp), "--store", str(store), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((store / "runs" / f"tiny-{pipeline}-{layout}.json").read_text())
    if layout == "t2i":
        assert {"R@1", "R@5", "R@10", "R@50"} <= set(record["metrics"])
    elif layout == "chat":
        assert set(record["metrics"]) == {"Hits@10 r0", "Hits@10 r1"}
    else:
        assert {"R@1", "R@5", "R@10", "R@50", "Rs@1"} <= set(record["metrics"])
    steps = {s["step"]: s for s in record["steps"]}
    parse_steps = [s for name, s in steps.items() if name.endswith("/parse")]
    assert parse_steps and all("fallbacks" in s["report"] for s in parse_steps)
    if pipeline == "imagescope" and layout == "cirr":
        assert {"s1/evaluate", "s2/evaluate", "s3/evaluate"} <= set(steps)
    dry = CliRunner().invoke(main, ["run", str(exp), "--store", str(store), "--dry-run"], catch_exceptions=False)
    assert "miss" not in dry.output and "pending" not in dry.output
