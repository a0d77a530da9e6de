"""Experiment files: strict loading, overrides and sweeps, with errors that name file, key, found, expected."""

import dataclasses
from typing import Literal

import pytest

from cirkit.experiment.config import ConfigError, build, parse_override
from cirkit.experiment.experiment import load_experiment


@dataclasses.dataclass(frozen=True)
class Inner:
    k: int = 10
    tau: float = 0.15
    mode: Literal["exact", "scann"] = "exact"
    ks: tuple[int, ...] = (1, 5)
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    flag: bool = False
    required: int = dataclasses.field(default=0)


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_build_converts_and_validates():
    cfg = build(Outer, {"inner": {"k": 5, "tau": 1, "ks": [1, 2, 3], "mode": "scann"}, "flag": True}, source="f.toml")
    assert cfg == Outer(Inner(k=5, tau=1.0, ks=(1, 2, 3), mode="scann"), flag=True)
    assert isinstance(cfg.inner.tau, float) and isinstance(cfg.inner.ks, tuple)


@pytest.mark.parametrize("data,message", [
    ({"inner": {"k": "ten"}}, "f.toml: key 'inner.k': expected int, found str 'ten'"),
    ({"inner": {"k": 1.5}}, "key 'inner.k': expected int, found float 1.5"),
    ({"inner": {"k": True}}, "key 'inner.k': expected int, found bool True"),
    ({"inner": {"tau": "x"}}, "key 'inner.tau': expected float"),
    ({"inner": {"mode": "fast"}}, "key 'inner.mode': expected one of 'exact', 'scann', found str 'fast'"),
    ({"inner": {"ks": [1, "a"]}}, "key 'inner.ks[1]': expected int"),
    ({"inner": {"kk": 1}}, "key 'inner.kk': unknown key; Inner has k, ks, mode, name, tau"),
    ({"bogus": 1}, "key 'bogus': unknown key"),
    ({"inner": 3}, "key 'inner': expected a table for Inner, found int 3"),
    ({"flag": 1}, "key 'flag': expected bool, found int 1"),
])
def test_build_errors_name_key_found_and_expected(data, message):
    with pytest.raises(ConfigError) as info:
        build(Outer, data, source="f.toml")
    assert message in str(info.value)


def test_missing_required_field():
    @dataclasses.dataclass(frozen=True)
    class NeedsPath:
        path: str

    with pytest.raises(ConfigError, match="key 'path': missing; expected str"):
        build(NeedsPath, {}, source="f.toml")


def test_missing_experiment_file(tmp_path):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(str(tmp_path / "nope.toml"))


def test_invalid_toml_and_unknown_pipeline(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_experiment(write(tmp_path, "pipeline = \n"))
    with pytest.raises(ConfigError, match="key 'pipeline': unknown pipeline 'nope'"):
        load_experiment(write(tmp_path, 'pipeline = "nope"\n'))
    with pytest.raises(ConfigError, match="key 'pipeline': missing"):
        load_experiment(write(tmp_path, "[embed]\ndim = 3\n"))


def test_unknown_key_in_experiment_names_the_file(tmp_path):
    path = write(tmp_path, 'pipeline = "toy_pipeline:toy"\n[embed]\ndimension = 3\n')
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert f"{path}: key 'embed.dimension': unknown key" in str(info.value)


def test_overrides_and_their_errors(tmp_path):
    path = write(tmp_path, 'pipeline = "toy_pipeline:toy"\n[embed]\ndim = 3\n')
    exp = load_experiment(path, ("embed.dim=7", "items.prefix=abc", "embed.scale=2"))
    assert exp.runs[0].config.embed.dim == 7 and exp.runs[0].config.items.prefix == "abc"
    assert exp.runs[0].config.embed.scale == 2.0
    with pytest.raises(ConfigError, match="embed.dim': expected int, found str 'x'"):
        load_experiment(path, ("embed.dim=x",))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_experiment(path, ("embed.dim",))
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=hello world") == ("a", "hello world")


def test_sweep_expands_into_named_runs(tmp_path):
    path = write(tmp_path, 'pipeline = "toy_pipeline:toy"\nname = "abl"\n[sweep]\n"embed.dim" = [2, 3]\n"total.offset" = [0.0, 1.5]\n')
    exp = load_experiment(path)
    assert [r.name for r in exp.runs] == [
        "abl/embed.dim=2,total.offset=0.0", "abl/embed.dim=2,total.offset=1.5",
        "abl/embed.dim=3,total.offset=0.0", "abl/embed.dim=3,total.offset=1.5",
    ]
    assert exp.runs[3].config.embed.dim == 3 and exp.runs[3].config.total.offset == 1.5
    bad = write(tmp_path, 'pipeline = "toy_pipeline:toy"\n[sweep]\n"embed.dim" = 3\n', "bad.toml")
    with pytest.raises(ConfigError, match="sweep.embed.dim': expected a non-empty list"):
        load_experiment(bad)
    wrong = write(tmp_path, 'pipeline = "toy_pipeline:toy"\n[sweep]\n"embed.dimm" = [3]\n', "wrong.toml")
    with pytest.raises(ConfigError, match="embed.dimm': unknown key"):
        load_experiment(wrong)


def test_shipped_experiments_load():
    import pathlib

    for path in sorted(pathlib.Path(__file__).parents[2].joinpath("experiments").rglob("*.toml")):
        assert load_experiment(str(path)).runs


SYNTHETIC = '''pipeline = "synthetic_retrieval"
[gallery]
n_items = 60
[search]
k = 50
'''


@pytest.mark.parametrize("override,message", [
    ("search.k=0", "key 'search.k': expected an integer >= 1, found int 0"),
    ("metrics.ks=[1,500]", "key 'metrics.ks': expected values <= search.k = 50 (the search depth), found list [1, 500]"),
    ("metrics.ks=[]", "key 'metrics.ks': expected a non-empty list of integers >= 1 (the K of each metric), found list []"),
    ("metrics.ks=[0]", "key 'metrics.ks': expected integers >= 1 (the K of each metric), found list [0]"),
    ("encoder.dim=0", "key 'encoder.dim': expected an integer >= 1, found int 0"),
    ("gallery.n_items=0", "key 'gallery.n_items': expected an integer >= 1, found int 0"),
    ("gallery.n_items=-3", "key 'gallery.n_items': expected an integer >= 1, found int -3"),
    ("gallery.n_clusters=0", "key 'gallery.n_clusters': expected an integer >= 1, found int 0"),
    ("encoder.storage_dtype=float7", "key 'encoder.storage_dtype': expected one of 'float16', 'float32', 'float64', "
                                     "found str 'float7'"),
    ("encoder.noise=nan", "key 'encoder.noise': expected a number >= 0, found float nan"),
])
def test_nonsense_values_name_the_file_and_key(tmp_path, override, message):
    path = write(tmp_path, SYNTHETIC)
    with pytest.raises(ConfigError) as info:
        load_experiment(path, (override,))
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize("pipeline,override,key", [
    ("imagescope", "retrieval.k=10", "retrieval.k"),  # R@50 and mAP@50 from a list of 10 would be R@10
    ("imagescope", "rerank.top_k=80", "rerank.top_k"),
    ("imagescope", "rerank.alpha=30", "rerank.alpha"),
    ("imagescope", "stages=['s4']", "stages"),
    ("imagescope", "fusion.tau=1.5", "fusion.tau"),
    ("cirevl", "retrieval.k=10", "retrieval.k"),
    ("osrcir", "retrieval.chunk_size=0", "retrieval.chunk_size"),
    ("cirevl", "reasoner.backend.max_in_flight=0", "reasoner.backend.max_in_flight"),
    ("cirevl", "reasoner.decoding.max_tokens=0", "reasoner.decoding.max_tokens"),
    ("demo", "k=10", "k"),
    ("demo", "train.heads=3", "train.heads"),
    ("demo", "embed.batch_size=0", "embed.batch_size"),
    ("demo", "benchmark.n_t2i=0", "benchmark.n_t2i"),
])
def test_every_pipeline_checks_its_config(tmp_path, pipeline, override, key):
    path = write(tmp_path, f'pipeline = "{pipeline}"\n')
    load_experiment(path)  # the defaults are sound
    with pytest.raises(ConfigError, match=rf"^{path}: key '{key}': expected .+, found "):
        load_experiment(path, (override,))


def test_scann_knobs_are_checked_where_they_are_made():
    from cirkit.config_checks import InvalidConfig
    from cirkit.retrieval.scann_index import ScannConfig

    with pytest.raises(InvalidConfig, match="ScannConfig: key 'num_leaves': expected an integer >= 1, found int 0"):
        ScannConfig(num_leaves=0)
    with pytest.raises(InvalidConfig, match="key 'num_leaves_to_search': expected at most num_leaves = 10"):
        ScannConfig(num_leaves=10, num_leaves_to_search=20)


def test_experiment_files_must_be_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('pipeline = "synthetic_retrieval"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml: expected UTF-8 text, found byte 0xe9 at offset 51"):
        load_experiment(str(path))


def test_cir_lvlm_layers_sweep_is_the_main_experiment_at_each_depth():
    """The depth ablation's arms must differ from experiments/cir_lvlm.toml only in llm_layers, so the 2-layer arm
    is the main experiment's run (its cache) and the numbers compare with the README's table."""
    import pathlib

    root = pathlib.Path(__file__).parents[2] / "experiments"
    sweep = load_experiment(str(root / "ablations" / "cir_lvlm_layers.toml"))
    depths = [run.config.lvlm.model.llm_layers for run in sweep.runs]
    assert depths == [2, 4, 8]
    for run, depth in zip(sweep.runs, depths):
        main = load_experiment(str(root / "cir_lvlm.toml"), (f"lvlm.model.llm_layers={depth}",)).runs[0].config
        assert run.config == main
        assert run.name == f"cir-lvlm-layers/lvlm.model.llm_layers={depth}"
