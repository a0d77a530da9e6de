"""cirkit diff: config, shared/differing artifacts, metric deltas, rank changes, texts and model drift."""

import dataclasses
import json

from click.testing import CliRunner
from conftest import make_images
from fake_servers import Scripted

from cirkit.cli import main
from cirkit.data.model import ImageRef
from cirkit.engine import Store
from cirkit.experiment.diff import diff_runs
from cirkit.experiment.pipeline import pipeline
from cirkit.models.config import BackendConfig
from cirkit.models.prompts import PromptConfig
from cirkit.models.roles import EngineRoles, RoleConfig


def run(tmp_path, exp_text, name, *sets):
    exp = tmp_path / f"{name}.toml"
    exp.write_text(exp_text)
    args = ["run", str(exp), "--store", str(tmp_path / "store"), "--quiet", "--name", name]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_diff_of_two_synthetic_runs(tmp_path):
    text = 'pipeline = "synthetic_retrieval"\n[gallery]\nn_items = 300\n[queries]\nn_queries = 60\n'
    run(tmp_path, text, "a")
    run(tmp_path, text, "b", "encoder.noise=1.2")
    report = diff_runs(Store(str(tmp_path / "store")), "a", "b")
    assert report["config"] == [{"field": "encoder.noise", "a": 0.6, "b": 1.2}]
    assert set(report["shared"]) == {"make_gallery", "make_queries"}
    differ = {d["step"]: d for d in report["differ"]}
    assert differ["encode_gallery"]["why"] == ["noise: 0.6 -> 1.2"]
    assert differ["encode_gallery"]["content"]["within_tolerance"] is False
    assert {m["metric"] for m in report["metrics"]} >= {"R@1"}
    out = CliRunner().invoke(main, ["diff", "a", "b", "--store", str(tmp_path / "store"), "--json"])
    assert json.loads(out.output)["runs"] == ["a", "b"]


@dataclasses.dataclass(frozen=True)
class VerifyOnce:
    base_url: str = ""
    images: tuple[str, ...] = ()


@pipeline("test-verify-once", VerifyOnce)
def verify_once(engine, config):
    backend = BackendConfig("openai", "m", base_url=config.base_url, backoff=0.01)
    images = tuple(ImageRef(f"i{i}", p, content=f"{i:064x}") for i, p in enumerate(config.images))
    answers = EngineRoles(engine).verify(RoleConfig(backend, PromptConfig("generic/verifier")), images,
                                         tuple("is it red?" for _ in images))
    return {"answers": answers}


def test_diff_reports_model_drift(tmp_path):
    version = {"n": 1}

    def script(n, body):
        return 200, {"model": f"m-2026-0{version['n']}", "choices": [{"message": {"content": "Yes" if version["n"] == 1 else "No"}}]}, {}

    server = Scripted(script)
    models_handler = server.server.RequestHandlerClass

    def do_get(self):
        # vLLM-like: ``created`` is the request time (ignored), ``root`` says which weights are served.
        data = json.dumps({"data": [{"id": "m", "created": 1000 + version["n"], "root": f"/w/v{version['n']}"}]}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    models_handler.do_GET = do_get
    try:
        paths = [str(tmp_path / "a.png")]
        make_images(paths)
        text = (f'pipeline = "test-verify-once"\nbase_url = "{server.url}"\nimages = ["{paths[0]}"]\n')
        run(tmp_path, text, "before")
        version["n"] = 2  # the server now serves another snapshot under the same model name
        run(tmp_path, text, "after")
    finally:
        server.close()
    report = diff_runs(Store(str(tmp_path / "store")), "before", "after")
    drift = {d["step"]: d for d in report["drift"]}
    assert drift["verifier/backend"]["a"] == "m@id=m;root=/w/v1" and drift["verifier/backend"]["b"] == "m@id=m;root=/w/v2"
    assert drift["verifier/parse"] == {"step": "verifier/parse", "a": ["m-2026-01"], "b": ["m-2026-02"]}
    parse = next(d for d in report["differ"] if d["step"] == "verifier/parse")
    assert parse["content"]["changed"] == 1 and parse["content"]["examples"][0] == {"index": 0, "a": "True", "b": "False"}
    out = CliRunner().invoke(main, ["diff", "before", "after", "--store", str(tmp_path / "store")])
    assert "drift" in out.output


def test_diff_reports_a_different_environment(tmp_path):
    """Two runs of one experiment whose recorded environments differ (one record edited by hand to stand for a
    run on another machine: installing a second environment here would cost minutes)."""
    text = 'pipeline = "synthetic_retrieval"\n[gallery]\nn_items = 50\n[queries]\nn_queries = 10\n'
    run(tmp_path, text, "here")
    run(tmp_path, text, "there")
    store = Store(str(tmp_path / "store"))
    assert diff_runs(store, "here", "there")["environment"] == [], "same interpreter, same environment"
    record = store.get_run("there")
    env = record["environment"]
    assert env["packages"]["numpy"] and len(env["digest"]) == 64
    env["packages"] = {**env["packages"], "numpy": "1.0.0", "only-there": "2.0"}
    env["digest"] = "0" * 64
    store.put_run("there", record)
    changes = diff_runs(store, "here", "there")["environment"]
    assert any(c.startswith("numpy ") and c.endswith("-> 1.0.0") for c in changes)
    assert "only-there absent -> 2.0" in changes
    out = CliRunner().invoke(main, ["diff", "here", "there", "--store", str(tmp_path / "store")]).output
    assert "computed under a different environment" in out and "numpy" in out


def test_run_records_name_the_lock_they_match():
    import os

    import pytest

    from cirkit.experiment.environment import environment, read_lock

    if os.environ.get("CIRKIT_EXPECT_LOCK") == "0":
        pytest.skip("nox -s tests_latest runs outside the lock on purpose")

    env = environment()
    locks = env["locks"]
    assert "test.lock" in locks, "a source checkout records its lock files"
    pins = read_lock(__import__("pathlib").Path(__file__).parents[2] / "requirements" / "test.lock")
    assert pins["transformers"] and pins["numpy"]
    # The suite runs in the locked environment (nox -s tests installs from test.lock).
    assert locks["test.lock"]["matches"] is True, locks["test.lock"]["differs"]
