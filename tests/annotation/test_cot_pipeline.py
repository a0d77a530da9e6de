"""The ``cot_annotations`` pipeline through the CLI: annotate the built-in train split, export the annotations,
import the file again (checked against the split), and the oracle role path."""

import json

import pytest
from click.testing import CliRunner

from cirkit.annotation.cot import read_cot_json
from cirkit.cli import main

SMALL = {"benchmark.n_train": 4, "benchmark.n_t2i": 4, "benchmark.n_composed": 12, "benchmark.n_chat": 2,
         "benchmark.n_chat_distractors": 2, "train.n_triplets": 20}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cot")
    sets = [a for k, v in {**SMALL, "export.directory": json.dumps(str(tmp / "data"))}.items()
            for a in ("--set", f"{k}={v}")]

    def run(*args, code=0):
        extra = [*sets, "--quiet"] if args[0] == "run" else []
        result = CliRunner().invoke(main, [*map(str, args), "--store", str(tmp / "store"), *extra],
                                    catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("run", "experiments/cot_builtin.toml")  # the scene-graph annotations, exported for the tests below
    run("export", "cot-builtin", "cot", tmp / "cot.json")
    return tmp, run


def test_annotate_export_and_import_round_trip(cli):
    tmp, run = cli
    exported = read_cot_json(str(tmp / "cot.json"))
    assert len(exported.items) == 20 and exported.source == "scene graphs" and exported.split == "train"
    run("run", "experiments/cot_builtin.toml", "--set", "source=\"file\"", "--set", f"path={json.dumps(str(tmp / 'cot.json'))}",
        "--name", "imported")
    run("export", "imported", "cot", tmp / "again.json")
    again = read_cot_json(str(tmp / "again.json"))
    assert again == exported


def test_an_imported_file_of_another_split_is_refused(cli):
    tmp, run = cli
    data = json.loads((tmp / "cot.json").read_text())
    data["annotations"][3]["instruction"] = "paint it gold"
    (tmp / "edited.json").write_text(json.dumps(data))
    out = run("run", "experiments/cot_builtin.toml", "--set", "source=\"file\"",
              "--set", f"path={json.dumps(str(tmp / 'edited.json'))}", "--name", "edited", code=1)
    assert "query 3: annotated as" in out and "paint it gold" in out


def test_oracle_roles_through_the_pipeline(cli):
    tmp, run = cli
    run("run", "experiments/cot_builtin.toml", "--set", "source=\"roles\"", "--set", "max_queries=6",
        "--name", "roles")
    run("export", "roles", "cot", tmp / "roles.json")
    roles = read_cot_json(str(tmp / "roles.json"))
    exact = read_cot_json(str(tmp / "cot.json"))
    assert roles.source.startswith("roles: oracle:") and len(roles.items) == 6
    assert [a.conclusion for a in roles.items] == [a.conclusion for a in exact.items[:6]]


def test_val_queries_in_the_circo_layout_and_a_layout_the_split_lacks(cli):
    tmp, run = cli
    run("run", "experiments/cot_builtin.toml", "--set", "split=\"val\"", "--set", "layout=\"circo\"", "--name", "val")
    run("export", "val", "cot", tmp / "val.json")
    val = read_cot_json(str(tmp / "val.json"))
    assert (val.benchmark, val.split, len(val.items)) == ("circo", "val", 12)
    out = run("run", "experiments/cot_builtin.toml", "--set", "split=\"val\"", "--set", "layout=\"fashioniq\"",
              "--name", "bad", code=1)
    assert "key 'layout': expected one of cirr, circo for split 'val', found str 'fashioniq'" in out


def test_a_real_fashioniq_train_split_through_model_roles(tmp_path):
    """Real files (small, in FashionIQ's train format, one image missing and skipped) annotated by a captioner and
    a reasoner on a scripted OpenAI-compatible server on 127.0.0.1 (a real HTTP server; no real model runs here)."""
    from conftest import make_images
    from fake_servers import Scripted

    from cirkit.annotation.cot_roles import CotRolesConfig
    from cirkit.engine import Engine, Store
    from cirkit.models.config import BackendConfig
    from cirkit.models.prompts import PromptConfig
    from cirkit.models.roles import RoleConfig
    from cirkit.pipelines.training_data import CotDataConfig, cot_annotations

    names = [f"B0000{i}" for i in range(5)]
    (tmp_path / "image_splits").mkdir()
    (tmp_path / "captions").mkdir()
    (tmp_path / "image_splits" / "split.toptee.train.json").write_text(json.dumps(names))
    (tmp_path / "captions" / "cap.toptee.train.json").write_text(json.dumps(
        [{"target": names[i + 1], "candidate": names[i], "captions": [f"is red {i}", "has no sleeves"]} for i in range(4)]))
    make_images([tmp_path / "images" / f"{n}.png" for n in names if n != "B00004"])  # the last target is missing

    def script(n, body):
        content = body["messages"][-1]["content"]
        text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
        if "Requested change:" not in text:
            answer = "a plain top"
        else:
            change = text.split("Requested change: ", 1)[1].split("\n", 1)[0]
            answer = json.dumps({"reasoning": "the colour changes", "conclusion": f"a top that {change}"})
        return 200, {"model": "scripted-1", "choices": [{"message": {"content": answer}, "finish_reason": "stop"}]}, {}

    server = Scripted(script)
    try:
        backend = BackendConfig("openai", model="scripted", snapshot="s1", base_url=server.url, retries=0)
        roles = CotRolesConfig(RoleConfig(backend, PromptConfig("cot/captioner")),
                               RoleConfig(backend, PromptConfig("cot/reasoner")))
        config = CotDataConfig(root=str(tmp_path), layout="fashioniq", category="toptee", missing_images="skip",
                               source="roles", roles=roles)
        engine = Engine(Store(str(tmp_path / "store")), progress=False)
        cot = cot_annotations.build(engine, config)["cot"].value
    finally:
        server.close()
    assert [a.query for a in cot.items] == ["toptee-0", "toptee-1", "toptee-2"]  # toptee-3 needs the missing image
    assert cot.items[1].caption == "a plain top"
    assert cot.items[1].conclusion == "a top that is red 1 and has no sleeves" and cot.items[1].ok
    assert (cot.benchmark, cot.split, cot.caption_fallbacks, cot.reasoning_fallbacks) == ("fashioniq-toptee", "train", 0, 0)


@pytest.mark.parametrize("change, message", [
    ({"root": "/data/cirr", "source": "scenes"}, r"key 'source': expected 'roles' or 'file' \(scene graphs exist for"),
    ({"root": "/data/cirr", "source": "roles"}, "key 'roles.captioner.backend.kind': expected a real model's backend"),
    ({"split": "test"}, "key 'split': expected 'train' or 'val'"),
])
def test_config_errors_name_the_key(change, message):
    from cirkit.config_checks import InvalidConfig
    from cirkit.pipelines.training_data import CotDataConfig

    with pytest.raises(InvalidConfig, match=message):
        CotDataConfig(**change)
