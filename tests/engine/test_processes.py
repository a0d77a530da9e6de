"""Real processes on one store: a run killed mid-stage resumes; concurrent runs never corrupt anything."""

import json
import pathlib
import signal
import subprocess
import time

from conftest import cirkit_cmd, cli_env, run_cli

EXP = '''pipeline = "toy_pipeline:toy"
name = "slow"
[items]
n = {n}
[embed]
dim = 16
delay = {delay}
'''


def write_exp(tmp_path, n=60, delay=0.15, name="slow.toml"):
    path = tmp_path / name
    path.write_text(EXP.format(n=n, delay=delay))
    return path


def metrics_of(store, run="slow"):
    return json.loads((store / "runs" / f"{run}.json").read_text())["metrics"]


def shard_files(store):
    return list((store / "items").rglob("*.json")) if (store / "items").exists() else []


def test_sigkill_mid_stage_then_resume_matches_a_clean_run(tmp_path):
    exp = write_exp(tmp_path, delay=0.0)
    store, log, gate = tmp_path / "store", tmp_path / "embedded.log", tmp_path / "gate"
    gate.mkdir()
    # The toy stage blocks inside its 4th shard (after 15 items) and says so: the kill lands mid-stage, always.
    proc = subprocess.Popen(cirkit_cmd("run", exp, "--store", store, "--quiet"),
                            env=cli_env(TOY_EMBED_LOG=str(log), TOY_GATE=str(gate), TOY_GATE_AFTER="15"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (gate / "waiting").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before reaching the gate: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(shard_files(store)) == 3, "the three finished shards were published before the kill"
    assert not (store / "runs").exists(), "an interrupted run is not recorded as finished"

    result = subprocess.run(cirkit_cmd("run", exp, "--store", store, "--quiet"), env=cli_env(TOY_EMBED_LOG=str(log)),
                            capture_output=True, text=True, check=True)
    assert "computed" in result.stdout
    record = json.loads((store / "runs" / "slow.json").read_text())
    embed = next(s for s in record["steps"] if s["step"] == "embed")
    assert embed["items_cached"] == 15, "the resumed run reuses exactly the published shards"
    embedded = log.read_text().split()
    assert sorted(embedded) == [f"x{i:05d}" for i in range(60)], "no item computed twice, none lost"

    clean = tmp_path / "clean"
    run_cli("run", exp, "--store", clean, "--quiet")
    assert metrics_of(store) == metrics_of(clean)
    assert record["outputs"] == json.loads((clean / "runs" / "slow.json").read_text())["outputs"]
    assert "0 corrupt" in run_cli("verify", "--store", store).stdout


def test_concurrent_processes_on_one_store(tmp_path):
    store = tmp_path / "store"
    a = write_exp(tmp_path, n=40, delay=0.05, name="a.toml")
    b = write_exp(tmp_path, n=55, delay=0.05, name="b.toml")  # overlaps a's 40 items
    procs = [subprocess.Popen(cirkit_cmd("run", exp, "--store", store, "--quiet", "--name", tag),
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for exp, tag in ((a, "a"), (b, "b"), (a, "a2"), (b, "b2"))]
    for p in procs:
        out, errs = p.communicate(timeout=120)
        assert p.returncode == 0, errs
    for exp, tag in ((a, "a"), (b, "b")):
        clean = tmp_path / f"clean-{tag}"
        run_cli("run", exp, "--store", clean, "--quiet")
        runs = json.loads((clean / "runs" / "slow.json").read_text())
        for name in (tag, tag + "2"):
            rec = json.loads((store / "runs" / f"{name}.json").read_text())
            assert rec["metrics"] == runs["metrics"] and rec["outputs"] == runs["outputs"]
    assert "0 corrupt" in run_cli("verify", "--store", store).stdout
    assert not [p for p in pathlib.Path(store).rglob(".tmp-*") if p.is_file()]
