"""The command line: run, dry run with reasons, ls, show, status, verify and gc, on a real store."""

import dataclasses
import json
import re

import pytest
from click.testing import CliRunner
from conftest import make_images
from fake_servers import Scripted

from cirkit.cli import main
from cirkit.data.model import ImageRef
from cirkit.experiment.pipeline import pipeline
from cirkit.models.config import BackendConfig
from cirkit.models.prompts import PromptConfig
from cirkit.models.roles import EngineRoles, RoleConfig

EXP = '''pipeline = "toy_pipeline:toy"
name = "toy"
[items]
n = 23
[embed]
dim = 8
'''


@pytest.fixture
def env(tmp_path):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    store = tmp_path / "store"
    runner = CliRunner()

    def cli(*args, code=0):
        extra = ["--quiet"] if args[0] == "run" else []
        result = runner.invoke(main, [*map(str, args), "--store", str(store), *extra], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return exp, store, cli


def test_run_prints_steps_and_results_and_records_the_run(env):
    exp, store, cli = env
    out = cli("run", exp)
    assert "computed" in out and "results: toy" in out and "sum" in out
    record = json.loads(next(store.joinpath("runs").glob("*.json")).read_text())
    assert record["name"] == "toy" and len(record["artifacts"]) == 3
    out = cli("run", exp)
    assert "computed" not in out.split("results")[0] and out.count("hit") >= 3


def test_dry_run_says_what_changed(env):
    exp, store, cli = env
    cli("run", exp)
    out = cli("run", exp, "--dry-run", "--set", "embed.dim=9")
    assert "make_items" in out and "hit" in out
    assert "miss" in out and "config dim: 8 -> 9" in out
    assert "pending" in out and "upstream recomputes" in out
    out = cli("run", exp, "--dry-run", "--set", "items.n=25")
    assert "config n: 23 -> 25" in out
    assert not list(store.joinpath("records").rglob("*.json"))[3:], "a dry run writes nothing"


def test_dry_run_reports_partial_items(env):
    exp, store, cli = env
    cli("run", exp)
    cli("run", exp, "--set", "items.n=30", "--set", "embed.scale=2")  # creates the 30-item list
    out = cli("run", exp, "--dry-run", "--set", "items.n=30")
    assert "partial" in out and "23/30" in out


def test_bad_experiment_gives_a_clear_error(env, tmp_path):
    exp, store, cli = env
    out = cli("run", exp, "--set", "embed.dim=eight", code=1)
    assert "key 'embed.dim': expected int, found str 'eight'" in out
    out = cli("run", tmp_path / "missing.toml", code=1)
    assert "missing.toml: experiment file not found" in out


def test_ls_show_status(env):
    exp, store, cli = env
    cli("run", exp)
    cli("run", exp, "--name", "small", "--set", "items.n=7")
    rows = [line for line in cli("ls").splitlines() if line.strip("│ ").startswith(("toy ", "small "))]
    assert len(rows) == 2, "both named runs are listed, one row each"
    assert "n 7" in next(r for r in rows if r.strip("│ ").startswith("small")), "each row shows its own run's metrics"
    out = cli("show", "toy")
    assert "embed" in out and "sum" in out
    record = json.loads(next(store.joinpath("runs").glob("*.json")).read_text())
    key = next(s["key"] for s in record["steps"] if s["step"] == "total")
    out = cli("show", key[:10])
    assert "total" in out and "lineage" in out and "vectors <- embed" in out and "items <- make_items" in out
    out = cli("status")
    assert "records" in out and "arrays" in out and "total" in out
    assert "no run or artifact key" in cli("show", "ffffffffff", code=1)


def test_verify_detects_corruption_and_repair_lets_runs_recompute(env):
    exp, store, cli = env
    cli("run", exp)
    assert "0 corrupt" in cli("verify")
    value = next(store.joinpath("values").rglob("*.json"))
    value.write_bytes(value.read_bytes()[:-3])
    out = cli("verify", code=1)
    assert "1 corrupt" in out
    cli("verify", "--repair", code=1)
    assert "0 corrupt; runs incomplete: 1" in cli("verify", code=1), "the run now lacks the removed value"
    cli("run", exp)
    assert "0 corrupt" in cli("verify")


def test_gc_removes_only_what_no_run_reaches(env):
    exp, store, cli = env
    cli("run", exp)
    cli("run", exp, "--set", "embed.dim=4", "--replace")  # overwrite on purpose: the dim=8 artifacts lose their root
    before = sorted(p for p in store.rglob("*") if p.is_file())
    out = cli("gc", "--dry-run")
    assert "would remove" in out
    assert sorted(p for p in store.rglob("*") if p.is_file()) == before
    cli("gc")
    assert "0 entries" in cli("gc", "--dry-run")
    out = cli("run", exp, "--set", "embed.dim=4")  # the same configuration as the run named toy: no new name
    assert "computed" not in out.split("results")[0], "gc kept everything the named run needs"
    assert "0 corrupt" in cli("verify")


SYNTHETIC = '''pipeline = "synthetic_retrieval"
[gallery]
n_items = 60
[queries]
n_queries = 10
'''


@pytest.mark.parametrize("override,key", [
    ("search.k=0", "search.k"), ("metrics.ks=[1,500]", "metrics.ks"), ("metrics.ks=[]", "metrics.ks"),
    ("metrics.ks=[0]", "metrics.ks"), ("encoder.dim=0", "encoder.dim"), ("gallery.n_items=0", "gallery.n_items"),
    ("gallery.n_clusters=0", "gallery.n_clusters"), ("encoder.storage_dtype=float7", "encoder.storage_dtype"),
])
def test_nonsense_config_is_a_one_line_error_naming_the_key(env, tmp_path, override, key):
    _, store, cli = env
    exp = tmp_path / "synthetic.toml"
    exp.write_text(SYNTHETIC)
    out = cli("run", exp, "--set", override, code=1)
    assert out.startswith(f"Error: {exp}: key '{key}': expected ") and out.count("\n") == 1, out
    assert not store.joinpath("runs").exists(), "nothing ran"


def test_unreadable_experiment_files_are_one_line_errors(env, tmp_path):
    _, _, cli = env
    exp = tmp_path / "bad.toml"
    exp.write_bytes(b'pipeline = "synthetic_retrieval"\n# \xff\xfe\n')
    out = cli("run", exp, code=1)
    assert out == f"Error: {exp}: expected UTF-8 text, found byte 0xff at offset 35 (experiment files are UTF-8 TOML)\n"
    demo = tmp_path / "demo.toml"
    demo.write_text('pipeline = "demo"\nk = 10\n')
    out = cli("demo", "--experiment", demo, code=1)
    assert out.startswith(f"Error: {demo}: key 'k': expected an integer >= 50") and out.count("\n") == 1, out


@pytest.mark.parametrize("store_arg,message", [
    ("a-file", "expected a store folder or URL, found a file"),
    ("nosuch://bucket/store", "unknown URL scheme 'nosuch'"),
    ("a-file/store", "cannot open the store (Not a directory"),
])
def test_a_store_that_cannot_be_one_is_a_one_line_error(tmp_path, store_arg, message):
    (tmp_path / "a-file").write_text("not a store")
    url = store_arg if "://" in store_arg else str(tmp_path / store_arg)
    for command in (["ls"], ["status"], ["show", "toy"], ["verify"]):
        result = CliRunner().invoke(main, [*command, "--store", url], catch_exceptions=False)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert result.output.startswith(f"Error: --store {url}: {message}"), result.output


@pytest.mark.parametrize("damage,field", [
    (lambda r: r.pop("steps"), "steps': missing"),
    (lambda r: r.update(steps="x"), "steps': expected a list, found str 'x'"),
    (lambda r: r["steps"][1].pop("stage"), "steps[1].stage': missing"),
    (lambda r: r["steps"][0].update(inputs=[1]), "steps[0].inputs': expected a table, found list [1]"),
    (lambda r: r.update(outputs=3), "outputs': expected a table, found int 3"),
    (lambda r: r.update(metrics="good"), "metrics': expected a table or null, found str 'good'"),
])
def test_a_malformed_run_record_is_a_one_line_error_in_show_diff_and_report(env, tmp_path, damage, field):
    from cirkit.engine import Store

    exp, store, cli = env
    cli("run", exp)
    cli("run", exp, "--name", "bad")
    s = Store(str(store))
    record = s.get_run("bad")
    record.pop("checksum", None)
    damage(record)
    s.put_run("bad", record)  # a record with a valid checksum: whole, but not the shape cirkit writes
    where = f"Error: {store}/runs/bad.json: field '{field}"
    for command in (["show", "bad"], ["show", "bad", "--json"], ["diff", "toy", "bad"], ["diff", "bad", "toy"],
                    ["report", "bad", tmp_path / "r.html"], ["export", "bad", "metrics", tmp_path / "m.json"]):
        out = cli(*command, code=1)
        assert out.startswith(where) and out.count("\n") == 1, (command, out)
    assert "toy" in cli("show", "toy"), "the intact run is still shown"


@dataclasses.dataclass(frozen=True)
class AskServer:
    base_url: str = ""
    images: tuple[str, ...] = ()


@pipeline("test-cli-ask-server", AskServer)
def ask_server(engine, config):
    backend = BackendConfig("openai", "m", snapshot="pinned", base_url=config.base_url, retries=1, backoff=0.01,
                            max_in_flight=1)
    images = tuple(ImageRef(f"i{i}", p, content=f"{i:064x}") for i, p in enumerate(config.images))
    answers = EngineRoles(engine).verify(RoleConfig(backend, PromptConfig("generic/verifier")), images,
                                         tuple(f"is picture {i} red?" for i in range(len(images))))
    return {"answers": answers}


def test_a_failing_model_call_is_a_one_line_error_and_only_it_is_asked_again(env, tmp_path):
    _, store, cli = env
    broken = {"on": True}
    ok = {"model": "m", "choices": [{"message": {"content": "Yes"}, "finish_reason": "stop"}]}
    server = Scripted(lambda n, body: (200, b"<html>proxy error</html>", {})
                      if broken["on"] and "picture 1 " in json.dumps(body) else (200, ok, {}))
    try:
        paths = [tmp_path / f"{i}.png" for i in range(3)]
        make_images(paths)
        exp = tmp_path / "ask.toml"
        exp.write_text(f'pipeline = "test-cli-ask-server"\nbase_url = "{server.url}"\n'
                       f'images = [{", ".join(json.dumps(str(p)) for p in paths)}]\n')
        out = cli("run", exp, code=1)
        assert out.startswith("Error: ") and out.count("\n") == 1, out
        assert "failed after 2 attempts (HTTP 200 but the body is not JSON" in out
        assert len(server.bodies) == 4, "two answers, and the failing request twice"
        broken["on"] = False
        cli("run", exp)
        assert len(server.bodies) == 5, "the rerun asks only for the request that failed"
    finally:
        server.close()


def test_a_different_configuration_never_overwrites_a_run(env):
    exp, store, cli = env
    cli("run", exp)
    first = json.loads((store / "runs" / "toy.json").read_text())
    out = cli("run", exp, "--set", "embed.dim=4")
    assert "recorded as 'toy~2'" in out and "--name" in out
    assert json.loads((store / "runs" / "toy.json").read_text())["config_hash"] == first["config_hash"]
    assert json.loads((store / "runs" / "toy~2.json").read_text())["config"]["embed"]["dim"] == 4
    out = cli("run", exp, "--set", "embed.dim=4")  # the same configuration again: the same run, no toy~3
    assert "toy~3" not in out and not (store / "runs" / "toy~3.json").exists()
    cli("run", exp, "--set", "embed.dim=4", "--replace")
    assert json.loads((store / "runs" / "toy.json").read_text())["config"]["embed"]["dim"] == 4


def test_ls_shows_headline_metrics_and_keeps_the_cold_compute_time(env, tmp_path):
    exp, store, cli = env
    slow = tmp_path / "slow.toml"
    slow.write_text(EXP.replace('name = "toy"', 'name = "slow"') + "delay = 0.05\n")  # 5 shards of 0.05 s
    cli("run", slow)
    cold = json.loads((store / "runs" / "slow.json").read_text())
    assert cold["cold_seconds"] >= 0.25 and cold["cold"]["embed"]["items"] == 23
    cli("run", slow)  # everything cached: the record is rewritten, the cold cost is not lost
    warm = json.loads((store / "runs" / "slow.json").read_text())
    assert {s["status"] for s in warm["steps"]} == {"hit"}
    assert warm["cold_seconds"] == cold["cold_seconds"] and warm["seconds"] < warm["cold_seconds"]
    shown = next(line for line in cli("show", "slow").splitlines() if line.startswith("│ embed "))
    assert f"{cold['cold']['embed']['seconds']:.2f}" in shown, "show keeps the cold seconds of a cached step"
    row = next(line for line in cli("ls").splitlines() if "slow" in line)
    assert f"{cold['cold_seconds']:.1f}s" in row
    assert "n 23" in row and "sum" in row  # headline metrics in reading order, not alphabetical key=value


def test_summary_on_a_fresh_store_claims_nothing_cached(env, tmp_path):
    exp, store, cli = env
    twice = tmp_path / "twice.toml"
    twice.write_text('pipeline = "toy_pipeline:toy_twice"\nname = "twice"\n')
    out = cli("run", twice)
    summary = out.strip().splitlines()[-1]
    assert "cached" not in summary.replace("reused", ""), summary
    assert "1 reused within this run" in summary and "3 computed" in summary


def test_progress_lines_without_a_terminal(env, tmp_path):
    exp, store, _ = env
    slow = tmp_path / "slow.toml"
    slow.write_text(EXP.replace("n = 23", "n = 200") + "delay = 0.02\n")
    result = CliRunner().invoke(main, ["run", str(slow), "--store", str(store)], catch_exceptions=False,
                                env={"CIRKIT_PROGRESS_INTERVAL": "0"})
    lines = [line for line in result.output.splitlines() if line.startswith("embed (items): ")]
    assert lines and lines[-1].startswith("embed (items): 200/200 items (100%)") and "items/s" in lines[0]
    assert "ETA" in lines[0]


def test_sweep_summary_and_sweep_plot(env, tmp_path):
    from PIL import Image

    exp, store, cli = env
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(EXP + '[sweep]\n"embed.scale" = [1.0, 2.0, 3.0]\n"total.offset" = [0.0, 1.0]\n')
    out = cli("run", sweep)
    summary = out[out.index("toy: 6 runs"):]
    header = next(line for line in summary.splitlines() if "scale" in line)
    assert header.index("scale") < header.index("offset") < header.index(" n ") < header.index("sum")
    assert "…" not in summary and "toy/embed.scale" not in summary, "rows are labelled by the swept values"
    records = {json.loads(p.read_text())["sweep_point"]["embed.scale"]: json.loads(p.read_text())
               for p in (store / "runs").glob("*.json") if "offset%3D0.0" in p.name}
    assert records[2.0]["metrics"]["sum"] == pytest.approx(2 * records[1.0]["metrics"]["sum"], abs=1e-4)

    from cirkit.reporting.sweeps import sweep_series

    all_records = [json.loads(p.read_text()) for p in (store / "runs").glob("*.json")]
    key, metric, series = sweep_series(all_records, "sum")
    assert key == "embed.scale" and metric == "sum"
    lines = {s.label: s.points for s in series}
    assert set(lines) == {"offset=0.0", "offset=1.0"}
    assert [x for x, _ in lines["offset=0.0"]] == [1.0, 2.0, 3.0]
    assert [y for _, y in lines["offset=1.0"]] == pytest.approx([y + 1.0 for _, y in lines["offset=0.0"]])
    cli("plot-sweep", "toy", "-o", tmp_path / "sweep.png", "--metric", "sum")
    with Image.open(tmp_path / "sweep.png") as image:
        assert image.format == "PNG" and image.size == (640, 400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 5, "lines, text and a legend, not a blank canvas"
    assert "no sweep over a numeric value named 'nope'" in cli("plot-sweep", "nope", "-o", tmp_path / "x.png", code=1)


def test_diff_rounds_floats_and_says_what_each_count_means(env):
    exp, store, cli = env
    cli("run", exp, "--name", "a")
    cli("run", exp, "--name", "b", "--set", "embed.scale=1.3", "--set", "total.offset=0.123456789")
    out = cli("diff", "a", "b")
    assert "1 steps identical (same key and output), 2 differ, 0 only in A, 0 only in B" in out
    line = next(x for x in out.splitlines() if "embed" in x and "largest" in x)
    worst = re.search(r"largest elementwise difference ([0-9.e-]+) \(above the tolerance 0.001\)", out)
    assert worst and len(worst.group(1).replace("0.", "").lstrip("0")) <= 3, line
    data = json.loads(cli("diff", "a", "b", "--json"))
    embed = next(d for d in data["differ"] if d["step"] == "embed")
    assert float(worst.group(1)) == pytest.approx(embed["content"]["max_abs_diff"], rel=5e-3)
    deltas = {m["metric"]: m for m in data["metrics"]}
    row = next(x for x in out.splitlines() if x.strip().startswith("│ sum"))
    assert f"{deltas['sum']['delta']:+.2f}" in row and not re.search(r"\d\.\d{3,}", row), row
