"""Run records: a run name is reused only by the same computation (configuration hash and output keys)."""

import dataclasses

from cirkit.engine import Store, stage
from cirkit.experiment.experiment import Experiment, RunSpec
from cirkit.experiment.pipeline import pipeline
from cirkit.experiment.runner import free_run_name, run_experiment


@dataclasses.dataclass(frozen=True)
class ShiftConfig:
    shift: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunnerToyConfig:
    n: int = 3
    # left out of this config's hash, like ``lvlm.align``: it reaches the outputs' keys through its own stage
    shift: ShiftConfig = dataclasses.field(default=ShiftConfig(), metadata={"hash": False})


@stage(version=1)
def shifted_values(config: ShiftConfig) -> tuple:
    return (config.shift, config.shift + 1.0)


@stage(version=1)
def count_values(config: RunnerToyConfig, values: tuple) -> dict:
    return {"n": config.n, "first": values[0]}


@pipeline("test-runner-indirect", RunnerToyConfig)
def indirect(engine, config: RunnerToyConfig) -> dict:
    values = engine.run(shifted_values, config.shift)
    return {"metrics": engine.run(count_values, config, values=values)}


def _experiment(config: RunnerToyConfig) -> Experiment:
    return Experiment(source="test", name="indirect", description="", pipeline=indirect,
                      runs=(RunSpec("indirect", config),))


def test_a_setting_outside_the_config_hash_still_gets_its_own_run_record(tmp_path):
    store = Store(str(tmp_path))
    [first] = run_experiment(_experiment(RunnerToyConfig()), store, progress=False)
    [second] = run_experiment(_experiment(RunnerToyConfig(shift=ShiftConfig(2.0))), store, progress=False)
    assert (first.name, second.name) == ("indirect", "indirect~2")
    assert store.get_run("indirect")["metrics"]["first"] == 0.0, "the first run's record is kept"
    assert store.get_run("indirect~2")["metrics"]["first"] == 2.0
    [again] = run_experiment(_experiment(RunnerToyConfig(shift=ShiftConfig(2.0))), store, progress=False)
    assert again.name == "indirect~2", "the same computation again updates its own record"


def test_free_run_name_compares_the_configuration_and_the_output_keys(tmp_path):
    store = Store(str(tmp_path))
    k1, k2, k3, k9 = ("1" * 64, "2" * 64, "3" * 64, "9" * 64)
    store.put_run("r", {"config_hash": "c1", "outputs": {"metrics": {"key": k1, "content": k1}}})
    assert free_run_name(store, "r", "c1", {"metrics": k1}) == "r"
    assert free_run_name(store, "r", "c1", {"metrics": k2}) == "r~2", "same config, other outputs"
    assert free_run_name(store, "r", "c2", {"metrics": k1}) == "r~2", "other config, same outputs"
    assert free_run_name(store, "r", "c1", {"metrics": k1, "ranking": k3}) == "r~2", "an output more"
    assert free_run_name(store, "r", "c1", {"metrics": k2}, replace=True) == "r"
    store.put_run("r~2", {"config_hash": "c1", "outputs": {"metrics": {"key": k2, "content": k2}}})
    assert free_run_name(store, "r", "c1", {"metrics": k2}) == "r~2"
    assert free_run_name(store, "r", "c1", {"metrics": k9}) == "r~3"
