"""The notebook API (cirkit.open) over a real store, and the examples/ script that tours it."""

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from report_pipeline import write_images

import cirkit
from cirkit.cli import main

pd = pytest.importorskip("pandas", reason="the notebook API returns pandas DataFrames")

EXP = 'pipeline = "report_pipeline:squares"\nname = "squares"\n[data]\nfolder = "{folder}"\n'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def store(tmp_path):
    write_images(tmp_path / "images")
    exp = tmp_path / "squares.toml"
    exp.write_text(EXP.format(folder=tmp_path / "images"))
    for name, noise in (("good", "0.6"), ("noisy", "1.0")):
        result = CliRunner().invoke(main, ["run", str(exp), "--store", str(tmp_path / "store"), "--quiet", "--name",
                                           name, "--set", f"rank.noise={noise}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return tmp_path / "store"


def test_runs_steps_and_artifacts(store):
    ws = cirkit.open(str(store))
    assert list(ws.runs) == ["good", "noisy"]
    run = ws.runs["good"]
    assert list(run.steps) == ["load_squares", "describe", "rank", "evaluate", "table"]
    ranking = run.steps["rank"].value
    assert isinstance(ranking.indices, np.ndarray) and ranking.indices.shape == (12, 10)
    assert run.input("evaluate", "ranking").indices.tolist() == ranking.indices.tolist()
    frame = run.metrics_frame()
    assert list(frame.columns) == ["R@1", "R@5", "R@10"]
    assert list(frame.index) == ["composed squares · ranker", "composed squares · chance"]
    assert frame.loc["composed squares · ranker", "R@10"] == pytest.approx(run.metrics["composed squares · ranker"]["R@10"])
    with pytest.raises(KeyError, match="no step 'nope'; steps are load_squares"):
        run.steps["nope"]


def test_per_query_frames_agree_with_the_ranking(store):
    run = cirkit.open(str(store)).runs["noisy"]
    split, ranking = run.steps["load_squares"].value, run.steps["rank"].value
    ranks = run.target_ranks()
    for q, truth in enumerate(split.truths):
        ids = ranking.ranked_ids(q)
        expected = ids.index(truth.target) + 1 if truth.target in ids else None
        got = ranks.loc[split.queries[q].id, "rank"]
        assert (pd.isna(got) and expected is None) or got == expected
    recall_at_10 = 100 * ranks["rank"].le(10).fillna(False).mean()
    assert recall_at_10 == pytest.approx(run.metrics["composed squares · ranker"]["R@10"], abs=0.01)
    long = run.ranking_frame(k=3)
    assert len(long) == 36 and list(long[long["query"] == "q00"]["image"]) == ranking.ranked_ids(0, 3)
    texts = run.texts()
    assert texts.loc["q01", "describe"] == "a red square (noise 1.0)" and texts.loc["q01", "text"].startswith("make it")


def test_the_example_script_runs(store):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "notebook_tour.py"), "--store", str(store),
                             "good", "noisy"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
                                 "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "composed squares · chance" in out and "Ranking (12, 10) int64" in out and "biggest wins:" in out
    assert "a red square (noise 0.6)" in out
