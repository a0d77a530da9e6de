"""push / pull against a real S3-compatible server (moto's, on 127.0.0.1), and gc on the remote."""

import json
import os

import pytest
from click.testing import CliRunner
from conftest import free_port

from cirkit.cli import main
from cirkit.engine import Store
from cirkit.engine.maintenance import collect_garbage
from cirkit.engine.sharing import VerificationError, pull_run, push_run

pytest.importorskip("s3fs", reason="S3 needs s3fs (the test extra)")
moto_server = pytest.importorskip("moto.server", reason="the loopback S3 server is moto's (the test extra)")

EXP = 'pipeline = "toy_pipeline:toy"\n[items]\nn = 23\n[embed]\ndim = 300\n'


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket="cirkit")
    yield "s3://cirkit"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_toy(tmp_path, store, name="toy", *sets):
    exp = tmp_path / "toy.toml"
    exp.write_text(EXP)
    args = ["run", str(exp), "--store", str(store), "--quiet", "--name", name]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def fresh_fs_cache():
    import fsspec

    fsspec.filesystem("s3").invalidate_cache()


def test_push_then_pull_gives_a_fully_cached_run(s3, tmp_path):
    remote = f"{s3}/roundtrip"
    local = tmp_path / "a"
    run_toy(tmp_path, local)
    first = push_run(Store(str(local)), Store(remote), "toy")
    assert first.files > 5 and first.skipped == 0
    again = push_run(Store(str(local)), Store(remote), "toy")
    assert again.files == 1 and again.skipped > 5, "only the run record is re-sent"
    fresh_fs_cache()
    result = CliRunner().invoke(main, ["pull", "toy", remote, "--store", str(tmp_path / "b")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = run_toy(tmp_path, tmp_path / "b")
    assert "computed" not in out.split("results")[0], "everything the run needs came with the pull"
    assert json.loads((tmp_path / "b" / "runs" / "toy.json").read_text())["metrics"] == \
        json.loads((local / "runs" / "toy.json").read_text())["metrics"]


def test_tampered_content_is_rejected_and_nothing_is_published(s3, tmp_path):
    import s3fs

    remote = f"{s3}/tampered"
    local = tmp_path / "a"
    run_toy(tmp_path, local)
    push_run(Store(str(local)), Store(remote), "toy")
    fs = s3fs.S3FileSystem()
    victim = sorted(p for p in fs.find("cirkit/tampered/arrays") if not p.endswith("zarr.json"))[0]
    data = bytearray(fs.cat_file(victim))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(victim, bytes(data))
    fresh_fs_cache()
    target = tmp_path / "b"
    with pytest.raises(VerificationError, match="nothing was published"):
        pull_run(Store(remote), Store(str(target)), "toy")
    leftovers = [p for p in target.rglob("*") if p.is_file()] if target.exists() else []
    assert leftovers == []


def test_gc_on_the_remote(s3, tmp_path):
    remote = f"{s3}/gc"
    local = tmp_path / "a"
    run_toy(tmp_path, local, "keep")
    run_toy(tmp_path, local, "drop", "embed.dim=299")
    push_run(Store(str(local)), Store(remote), "keep")
    push_run(Store(str(local)), Store(remote), "drop")
    store = Store(remote)
    store.fs.remove(store.run_path("drop"))
    fresh_fs_cache()
    doomed, _ = collect_garbage(Store(remote), dry_run=True)
    assert doomed and all(not d.startswith("runs/") for d in doomed)
    collect_garbage(Store(remote), dry_run=False)
    fresh_fs_cache()
    assert collect_garbage(Store(remote), dry_run=True)[0] == []
    fresh_fs_cache()
    pull_run(Store(remote), Store(str(tmp_path / "c")), "keep")
    assert "computed" not in run_toy(tmp_path, tmp_path / "c", "keep").split("results")[0]


def test_pull_from_s3_of_a_run_listing_dotdot_keys_writes_nothing_outside(s3, tmp_path, monkeypatch):
    """On S3 an object name may contain ``..`` literally; the key is refused before it becomes any path."""
    import tempfile

    import s3fs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp" / "t"))
    (tmp_path / "systmp" / "t").mkdir(parents=True)

    from cirkit.engine.hashing import digest_bytes

    remote = f"{s3}/dotdot"
    local = tmp_path / "a"
    run_toy(tmp_path, local)
    push_run(Store(str(local)), Store(remote), "toy")
    fs = s3fs.S3FileSystem()
    run = json.loads(fs.cat_file("cirkit/dotdot/runs/toy.json"))
    legit = run["artifacts"][0]
    hostile = f"../../payload/{legit}"
    record = json.loads(fs.cat_file(f"cirkit/dotdot/records/{legit[:2]}/{legit}.json"))

    def checked(doc):
        body = {k: v for k, v in doc.items() if k != "checksum"}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return json.dumps({**body, "checksum": digest_bytes(raw)}, sort_keys=True, separators=(",", ":")).encode()

    fs.pipe_file(f"cirkit/dotdot/records/../../../payload/{legit}.json", checked({**record, "key": hostile}))
    run["artifacts"].append(hostile)
    fs.pipe_file("cirkit/dotdot/runs/toy.json", checked(run))
    fresh_fs_cache()
    target = tmp_path / "x" / "y" / "b"
    result = CliRunner().invoke(main, ["pull", "toy", remote, "--store", str(target)])
    assert result.exit_code == 1 and "invalid" in result.output, result.output
    assert not (tmp_path / "x" / "payload").exists() and not (tmp_path / "systmp" / "payload").exists()
    assert [p for p in target.rglob("*") if p.is_file()] == [] if target.exists() else True
