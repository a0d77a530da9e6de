"""The generic trainer: learning, exact resume, prefix continuation, streaming reads, frozen parameters."""

from __future__ import annotations

import threading

import jax
import numpy as np
import pytest
from trainer_fixtures import EvaluatedTinyTask, TinyTask, build_tiny, tiny_data, tiny_fields

from cirkit.engine import Engine, Store
from cirkit.training import (
    Checkpoint,
    TrainerConfig,
    batch_indices,
    fit,
    full_params,
    learning_rate_schedule,
    observe,
    train,
    training_stage,
)
from cirkit.training.loop import STEPS_PER_CALL

CFG = TrainerConfig(steps=60, batch_size=16, learning_rate=5e-2, warmup_steps=2, decay_steps=200,
                    checkpoint_every=10)
TINY_STAGE = training_stage(build_tiny, name="train_tiny")


def test_loss_falls_on_a_tiny_task():
    ckpt = train(TinyTask(), tiny_data(), CFG)
    assert ckpt.step == 60 and ckpt.losses.shape == (60,)
    assert ckpt.losses[-10:].mean() < 0.6 * ckpt.losses[:5].mean()


def test_data_source_reads_only_the_batches_it_trains_on():
    data = tiny_data(2000)
    train(TinyTask(), data, TrainerConfig(steps=25, batch_size=16, grad_accum=2, decay_steps=100))
    assert max(len(r) for r in data.reads) == STEPS_PER_CALL * 2 * 16 < len(data)  # one dispatch at a time
    expected = np.concatenate([batch_indices(0, m, 16, 2000) for m in range(50)])
    np.testing.assert_array_equal(np.concatenate(data.reads), expected)  # exactly those, each once


def test_batches_are_a_function_of_seed_and_step_with_full_epochs():
    first_epoch = np.concatenate([batch_indices(3, m, 16, 100) for m in range(6)])
    assert len(set(first_epoch.tolist())) == 96  # no repeats within an epoch; the tail of 4 is dropped
    assert not np.array_equal(batch_indices(3, 6, 16, 100), batch_indices(3, 0, 16, 100))  # a new permutation
    assert not np.array_equal(batch_indices(4, 0, 16, 100), batch_indices(3, 0, 16, 100))


def test_frozen_parameters_stay_out_of_checkpoints_and_optimiser_state():
    task = TinyTask(frozen_query=True)
    ckpt = train(task, tiny_data(), TrainerConfig(steps=3, batch_size=16, decay_steps=100))
    assert set(ckpt.params) == {"log_scale", "target/w"}
    # adamw keeps two moments per trainable tensor; none for the frozen 8x4 query tower
    assert sum(np.size(x) for x in ckpt.opt_state) < 2 * (64 + 1) + 8


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run():
    whole = train(TinyTask(), tiny_data(), CFG, stop=30)
    half = train(TinyTask(), tiny_data(), CFG, stop=17)
    rest = train(TinyTask(), tiny_data(), CFG, start=half, stop=30)
    for name in whole.params:
        np.testing.assert_array_equal(rest.params[name], whole.params[name])
    np.testing.assert_array_equal(rest.losses, whole.losses)


def test_learning_rate_schedule_does_not_depend_on_total_steps():
    short = learning_rate_schedule(TrainerConfig(steps=10, decay_steps=500))
    long = learning_rate_schedule(TrainerConfig(steps=900, decay_steps=500))
    assert [float(short(i)) for i in (0, 9, 60, 400)] == [float(long(i)) for i in (0, 9, 60, 400)]


class Killed(Exception):
    pass


def _fit(store_path, steps: int) -> tuple[Engine, Checkpoint]:
    engine = Engine(Store(str(store_path)), progress=False)
    artifact = fit(engine, TINY_STAGE, TinyTask(), TrainerConfig(**{**CFG.__dict__, "steps": steps}),
                   data=tiny_fields())
    return engine, artifact.value


def test_a_killed_cached_run_resumes_and_ends_with_the_same_weights(tmp_path):
    _, uninterrupted = _fit(tmp_path / "a", 30)
    killed = threading.Event()

    def kill_at_step_25(step, stop, losses):
        if step >= 25:
            killed.set()
            raise Killed(step)

    with observe(kill_at_step_25), pytest.raises(Killed):
        _fit(tmp_path / "b", 30)
    assert killed.is_set()
    trained = []
    with observe(lambda step, stop, losses: trained.append(len(losses))):
        engine, resumed = _fit(tmp_path / "b", 30)
    assert [s.status for s in engine.steps] == ["hit", "hit", "computed"]
    assert sum(trained) == 10  # only the segment 20 -> 30 ran again
    for name in uninterrupted.params:
        np.testing.assert_array_equal(resumed.params[name], uninterrupted.params[name])
    np.testing.assert_array_equal(resumed.losses, uninterrupted.losses)


def test_more_steps_continue_from_the_cached_prefix(tmp_path):
    _fit(tmp_path / "a", 10)
    trained = []
    with observe(lambda step, stop, losses: trained.append(len(losses))):
        engine, continued = _fit(tmp_path / "a", 20)
    assert [s.status for s in engine.steps] == ["hit", "computed"] and sum(trained) == 10
    _, cold = _fit(tmp_path / "cold", 20)
    assert continued.step == 20
    for name in cold.params:
        np.testing.assert_array_equal(continued.params[name], cold.params[name])


def test_checkpoint_is_safetensors_files_in_the_store(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.numpy import load

    engine, _ = _fit(tmp_path / "store", 10)
    content = engine.steps[-1].output
    doc = json.loads(next((tmp_path / "store" / "values").rglob(f"{content}.json")).read_text())
    assert len(doc["arrays"]) == 3  # one byte array per file, nothing pickled
    ckpt = Store(str(tmp_path / "store")).get_value(content)  # read back as a fresh process would
    assert ckpt.names == ("model.safetensors", "trainer.safetensors", "checkpoint.json")
    weights = load(ckpt.file("model.safetensors"))  # the reference reader, on the stored bytes
    assert sorted(weights) == sorted(ckpt.params) == ["log_scale", "query/w", "target/w"]
    np.testing.assert_array_equal(weights["target/w"], ckpt.params["target/w"])
    trainer = load(ckpt.file("trainer.safetensors"))
    assert len([k for k in trainer if k.startswith("opt/")]) == len(ckpt.opt_state) > 0
    np.testing.assert_array_equal(trainer["losses"], ckpt.losses)
    state = json.loads(ckpt.file("checkpoint.json"))
    assert (state["step"], state["position"], state["trainer"]["batch_size"]) == (10, 10, 16)
    folder = ckpt.write(str(tmp_path / "export"))
    with safe_open(f"{folder}/model.safetensors", "np") as f:
        assert f.metadata()["step"] == "10"
        np.testing.assert_array_equal(f.get_tensor("log_scale"), ckpt.params["log_scale"])
        assert f.get_tensor("log_scale").shape == ()


def test_a_checkpoint_read_back_resumes_bit_identically():
    """Through the files' bytes: a 0-d optimiser count, float32 moments and the loss history all survive."""
    task, data = TinyTask(), tiny_data()
    half = train(task, data, CFG, stop=20)
    reread = Checkpoint(half.names, tuple(np.frombuffer(f.tobytes(), np.uint8).copy() for f in half.files))
    assert any(np.shape(x) == () for x in reread.opt_state)
    whole, rest = train(task, data, CFG, stop=40), train(task, data, CFG, start=reread, stop=40)
    assert rest.files[0].tobytes() == whole.files[0].tobytes()  # the same model file, byte for byte
    np.testing.assert_array_equal(rest.losses, whole.losses)


def test_grad_accumulation_steps_on_the_mean_of_its_micro_batches():
    task, data = TinyTask(), tiny_data()
    cfg = TrainerConfig(steps=1, batch_size=16, grad_accum=3, decay_steps=100)
    one = train(task, data, cfg)
    params = task.init(jax.random.split(jax.random.PRNGKey(0))[0])
    micro = [float(task.loss(params, data.batch(batch_indices(0, m, 16, len(data))), jax.random.PRNGKey(m))[0])
             for m in range(3)]
    assert one.position == 3
    assert abs(float(one.losses[0]) - np.mean(micro)) < 1e-2 < max(abs(float(one.losses[0]) - v) for v in micro)


def test_evaluation_runs_every_n_steps_on_the_weights_of_that_step():
    task, cfg = EvaluatedTinyTask(), TrainerConfig(steps=25, batch_size=16, eval_every=10, decay_steps=100)
    ckpt = train(task, tiny_data(), cfg)
    assert [step for step, _ in ckpt.evals] == [10, 20]
    at_20 = train(task, tiny_data(), cfg, stop=20)
    assert ckpt.evals[1][1] == task.evaluate(full_params(task, at_20, cfg.seed))
    assert ckpt.evals[0][1] != ckpt.evals[1][1]


def test_full_params_keep_inits_order_with_trained_values_and_initial_ones_for_frozen_parameters():
    cfg = TrainerConfig(steps=3, batch_size=16, decay_steps=100)
    init = TinyTask().init(jax.random.split(jax.random.PRNGKey(cfg.seed))[0])
    for task in (TinyTask(), TinyTask(frozen_query=True)):  # every parameter in the checkpoint; one not
        ckpt = train(task, tiny_data(), cfg)
        params = full_params(task, ckpt, cfg.seed)
        assert list(params) == ["query", "target", "log_scale"], "init's order (sorted would start with log_scale)"
        np.testing.assert_array_equal(params["target"]["w"], ckpt.params["target/w"])
        if task.frozen_query:
            assert "query/w" not in ckpt.params
            np.testing.assert_array_equal(params["query"]["w"], init["query"]["w"])
        else:
            assert not np.array_equal(ckpt.params["query/w"], init["query"]["w"])
            np.testing.assert_array_equal(params["query"]["w"], ckpt.params["query/w"])


def test_a_run_of_other_length_is_another_configuration_for_run_names():
    """Segments share work across lengths, but a pipeline config holding the trainer config must still tell
    a 10-step run from a 20-step one (run names are reused only for the same configuration)."""
    from cirkit.engine import digest
    from cirkit.training.clip_trainer import TrainConfig

    assert digest(TrainerConfig(steps=10)) != digest(TrainerConfig(steps=20))
    assert digest(TrainConfig(steps=10)) != digest(TrainConfig(steps=20))


def test_dispatches_take_one_length_where_one_divides_every_stretch():
    from cirkit.training.loop import _chunks

    def lengths(start, stop, eval_every=0):
        cuts = _chunks(start, stop, 20, eval_every)
        assert [a for a, _ in cuts] == [start] + [b for _, b in cuts[:-1]] and cuts[-1][1] == stop, cuts
        return [b - a for a, b in cuts]

    assert lengths(0, 150) == [15] * 10, "7 x 20 + 10 would compile the training step twice"
    assert lengths(0, 1000) == [20] * 50
    assert lengths(0, 4) == [4]
    assert lengths(0, 150, eval_every=50) == [10] * 15, "evaluation cuts every 50 steps: 10 divides each stretch"
    assert lengths(0, 120, eval_every=45) == [15] * 8, "stretches 45, 45, 30: gcd 15"
    assert lengths(37, 100) == [20, 20, 20, 3], "63 steps: no length in 10..20 divides it, so the old cut"
    assert lengths(30, 100, eval_every=50) == [10] * 7, "a resumed run: stretches 20 and 50, gcd 10"
    assert lengths(0, 20, eval_every=7) == [7, 7, 6], "stretches 7, 7, 6: no common length, cut as before"
