"""The Ray executor on a real local Ray cluster (a head and its worker processes): same results as local."""

import json
import os
import signal
import sys

import pytest
from click.testing import CliRunner

from cirkit.cli import main

ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra")

EXP = 'pipeline = "toy_pipeline:toy"\n[items]\nn = 60\n[embed]\ndim = 16\n'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray head started by `ray start` in its own process (never forked from this JAX-initialised
    one); the driver connects to it by address."""
    import shutil
    import subprocess

    from conftest import free_port

    pid_log = tmp_path_factory.mktemp("pids") / "pids.txt"
    port = free_port()
    exe = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    # its own HOME: a token in the user's ~/.ray/auth_token would switch the head to token authentication,
    # which this driver (auth mode off) does not send (seen: a stray token made the head refuse the driver)
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TOY_PID_LOG": str(pid_log), "HOME": str(home)}
    # Everything on loopback: the head, its workers and the driver (never the machine's other addresses). In a
    # session of its own, so the head's daemons (GCS, raylet, agents) share one process group, stopped below by
    # that group alone; `ray stop --force` took ~7 s and would have killed every Ray process on the machine.
    started = subprocess.Popen([exe, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                                "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = started.communicate(timeout=180)
        assert started.returncode == 0, err[-2000:]
        ray.init(address=f"127.0.0.1:{port}", _node_ip_address="127.0.0.1", log_to_driver=False)
        yield pid_log
    finally:
        ray.shutdown()
        try:  # the workers (their own groups) exit with their raylet
            os.killpg(started.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ray_executor_matches_the_local_one(cluster, tmp_path):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    runner = CliRunner()
    for executor, store in (("local", tmp_path / "local"), ("ray", tmp_path / "ray")):
        result = runner.invoke(main, ["run", str(exp), "--store", str(store), "--quiet", "--executor", executor],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
    local = json.loads((tmp_path / "local" / "runs" / "toy.json").read_text())
    remote = json.loads((tmp_path / "ray" / "runs" / "toy.json").read_text())
    assert local["outputs"] == remote["outputs"] and local["metrics"] == remote["metrics"]
    pids = set(cluster.read_text().split())
    assert pids and str(os.getpid()) not in pids, "shards were computed in Ray worker processes"


def test_ray_ships_only_missing_shards(cluster, tmp_path):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    store = tmp_path / "s"
    CliRunner().invoke(main, ["run", str(exp), "--store", str(store), "--quiet"], catch_exceptions=False)
    result = CliRunner().invoke(main, ["run", str(exp), "--store", str(store), "--quiet", "--executor", "ray",
                                       "--set", "items.n=73", "--replace"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((store / "runs" / "toy.json").read_text())
    embed = next(s for s in record["steps"] if s["step"] == "embed")
    assert (embed["items_cached"], embed["items_total"]) == (60, 73)
