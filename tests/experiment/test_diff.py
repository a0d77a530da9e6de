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
        data = json.dumps({"data": [{"id": "m", "created": version["n"]}]}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    models_handler.do_GET = do_get
    try:
        paths = [str(tmp_path / "a.png")]
        make_images(paths)
        text = (f'pipeline = "test_diff:verify_once"\nbase_url = "{server.url}"\nimages = ["{paths[0]}"]\n')
        run(tmp_path, text, "before")
        version["n"] = 2  # the server now serves another snapshot under the same model name
        run(tmp_path, text, "after")
    finally:
        server.close()
    report = diff_runs(Store(str(tmp_path / "store")), "before", "after")
    drift = {d["step"]: d for d in report["drift"]}
    assert drift["verifier/backend"]["a"].endswith("@m@1") and drift["verifier/backend"]["b"].endswith("@m@2")
    assert drift["verifier/parse"] == {"step": "verifier/parse", "a": ["m-2026-01"], "b": ["m-2026-02"]}
    parse = next(d for d in report["differ"] if d["step"] == "verifier/parse")
    assert parse["content"]["changed"] == 1 and parse["content"]["examples"][0] == {"index": 0, "a": "True", "b": "False"}
    out = CliRunner().invoke(main, ["diff", "before", "after", "--store", str(tmp_path / "store")])
    assert "drift" in out.output
