"""cirkit report: a self-contained page comparing runs, checked as text and rendered in headless Chromium."""

import base64
import re

import pytest
from browser import chromium, probe_page
from click.testing import CliRunner
from report_pipeline import write_images

from cirkit.cli import main
from cirkit.engine import Store

EXP = 'pipeline = "report_pipeline:squares"\nname = "squares"\n[data]\nfolder = "{folder}"\n'


@pytest.fixture
def two_runs(tmp_path):
    write_images(tmp_path / "images")
    exp = tmp_path / "squares.toml"
    exp.write_text(EXP.format(folder=tmp_path / "images"))
    store = tmp_path / "store"

    def cli(*args):
        result = CliRunner().invoke(main, [*map(str, args), "--store", str(store)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("run", exp, "--quiet", "--name", "good", "--set", "rank.noise=0.6")
    cli("run", exp, "--quiet", "--name", "noisy", "--set", "rank.noise=1.0")
    return tmp_path, store, cli


def _report(tmp_path, cli, *runs):
    page = tmp_path / "report.html"
    cli("report", *runs, "-o", page)
    return page, page.read_text()


def test_two_run_page_compares_configs_metrics_and_queries(two_runs):
    tmp_path, store, cli = two_runs
    page, text = _report(tmp_path, cli, "good", "noisy")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, "self-contained"
    config = text[text.index("Fields that differ"):text.index("full configuration")]
    assert "rank.noise" in config and "0.6" in config and "1.0" in config and "data.folder" not in config
    metrics = text[text.index("<h2>composed squares</h2>"):text.index("<h2>plots</h2>")]
    assert metrics.index(">R@1<") < metrics.index(">R@5<") < metrics.index(">R@10<")
    assert metrics.index("ranker") < metrics.index("chance"), "chance row last"
    assert "<b>91.67</b>" in metrics and "(-25.00)" in metrics, "best in bold, delta against the first run"
    assert "Recall@K: composed squares" in text
    assert "biggest losses of noisy against good" in text and "sampled queries" in text
    assert "describe</b>: a red square (noise 1.0)" in text, "intermediate texts per run"
    assert "cost of each step (cold computation)" in text
    jpegs = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", text)
    assert jpegs and all(base64.b64decode(j)[:2] == b"\xff\xd8" and len(base64.b64decode(j)) < 4000 for j in jpegs)
    assert text.count("class='thumb target'") >= 4, "targets marked"


def test_thumbnails_are_cached_artifacts(two_runs):
    tmp_path, store, cli = two_runs
    _report(tmp_path, cli, "good", "noisy")
    records = {p.name for p in (store / "records").rglob("*.json")}
    shards = sorted(p.name for p in (store / "items").rglob("*") if p.is_file())
    _report(tmp_path, cli, "noisy", "good")  # the same queries and images again: nothing new at all
    assert {p.name for p in (store / "records").rglob("*.json")} == records
    cli("report", "good", "noisy", "--examples", "1", "-o", tmp_path / "fewer.html")  # a subset of those images
    assert sorted(p.name for p in (store / "items").rglob("*") if p.is_file()) == shards, "no thumbnail recomputed"
    s = Store(str(store))
    assert sum(s.get_record(k)["stage"] == "thumbnails" for k in s.iter_record_keys()) == 2


def test_older_single_run_form_still_works(two_runs):
    tmp_path, store, cli = two_runs
    out = cli("report", "good", tmp_path / "one.html")
    assert "wrote" in out and "<h2>composed squares</h2>" in (tmp_path / "one.html").read_text()


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (Debian package: chromium)")
def test_two_run_report_renders_in_chromium(two_runs):
    tmp_path, store, cli = two_runs
    page, text = _report(tmp_path, cli, "good", "noisy")
    shot = tmp_path / "report.png"
    seen = probe_page(page, shot)
    assert seen["probe"] == "done", {k: v for k, v in seen.items() if k != "stderr"}
    assert seen["errors"] == []
    images = text.count("<img ")
    plots = text.count("class='plot'")
    assert plots >= 1 and images > plots + 20
    assert seen["decoded"] == images and seen["failed"] == 0, seen
    assert shot.stat().st_size > 50_000, "a screenshot with content"


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (Debian package: chromium)")
def test_the_browser_probe_sees_broken_images_and_script_errors(tmp_path):
    page = tmp_path / "broken.html"
    good = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
    page.write_text("<!doctype html><html><head></head><body>"
                    f"<img src='data:image/png;base64,{good}'><img src='data:image/png;base64,AAAA'>"
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    seen = probe_page(page, tmp_path / "broken.png")
    assert (seen["decoded"], seen["failed"]) == (1, 1)
    assert "boom" in seen["errors"] and any("undefinedFunction" in e for e in seen["errors"])
