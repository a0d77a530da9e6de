"""The command line: run, dry run with reasons, ls, show, status, verify and gc, on a real store."""

import dataclasses
import json

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
    assert "toy" in cli("ls") and "toy_pipeline" not in cli("ls").split("toy", 1)[0]
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
    cli("run", exp, "--set", "embed.dim=4")  # same run name: the old dim=8 artifacts lose their root
    before = sorted(p for p in store.rglob("*") if p.is_file())
    out = cli("gc", "--dry-run")
    assert "would remove" in out
    assert sorted(p for p in store.rglob("*") if p.is_file()) == before
    cli("gc")
    assert "0 entries" in cli("gc", "--dry-run")
    out = cli("run", exp, "--set", "embed.dim=4")
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
