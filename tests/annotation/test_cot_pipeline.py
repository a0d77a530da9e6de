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
