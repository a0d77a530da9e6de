"""The local transformers backend (``backend.kind = "transformers"``) on SmolLM2-135M-Instruct: generated
tokens/s at batch 1, 8 and 32 when a step's requests are batched over the whole step by prompt length
(``stream``, what the ``chat`` stage does now), against the same requests answered shard by shard in arrival
order (``complete`` over shards of 16, what it did before), measured in one run.

Tokens are the answers re-tokenized (padding and anything after end-of-sequence do not count).

    python bench/local_batching_bench.py [--requests 32] [--max-tokens 24] [--folder CONVERTED_FOLDER]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's cirkit
from lm_bench import convert  # noqa: E402
from machine import describe  # noqa: E402
from rows import record  # noqa: E402


def questions(n: int) -> list[str]:
    """Prompts of mixed lengths, interleaved, as a step's requests often are (short and long captions)."""
    long = ("The reference image shows a red double-decker bus parked beside an old stone bridge at dusk, with "
            "people waiting at the stop. ")
    return [f"{long * (i % 4)}Describe item {i} in one short sentence." for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--folder", help="an already converted SmolLM2 folder (skips the GGUF conversion)")
    args = parser.parse_args()
    import torch

    from cirkit.models.backends.local_transformers import TransformersBackend
    from cirkit.models.config import BackendConfig
    from cirkit.models.requests import ChatRequest, Decoding, Message

    print(f"{describe()}; torch threads {torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or convert(tmp)
        requests = [ChatRequest("reasoner", "bench", "h", (Message("user", q),),
                                decoding=Decoding(max_tokens=args.max_tokens)) for q in questions(args.requests)]
        backend = TransformersBackend(BackendConfig("transformers", folder, batch_size=1))
        backend.complete(requests[:2])  # warm-up

        def tokens(answers) -> int:
            return sum(len(backend.tokenizer.encode(a.text, add_special_tokens=False)) for a in answers)

        def planned() -> list:
            out = dict(backend.stream(requests))
            return [out[i] for i in range(len(requests))]

        def shard_by_shard() -> list:
            return [a for s in range(0, len(requests), 16) for a in backend.complete(requests[s : s + 16])]

        print(f"{args.requests} requests, up to {args.max_tokens} new tokens each, greedy, fp32")
        print(f"{'batch':>5}  {'planned tok/s':>13}  {'by shard tok/s':>14}  {'planned / by shard':>18}  "
              f"{'planned / batch 1':>17}", flush=True)
        first, results = None, []
        for batch in [int(b) for b in args.batches.split(",")]:
            backend.config = BackendConfig("transformers", folder, batch_size=batch)
            rates = {}
            runs = (("planned", planned), ("shard", shard_by_shard)) if batch % 2 else (
                ("shard", shard_by_shard), ("planned", planned))  # alternate which goes first
            for name, fn in runs[:1] if batch == 1 else runs:  # at batch 1 both are the same single requests
                t0 = time.perf_counter()
                answers = fn()
                rates[name] = tokens(answers) / (time.perf_counter() - t0)
            rates.setdefault("shard", rates["planned"])
            first = first or rates["planned"]
            print(f"{batch:>5}  {rates['planned']:>13.1f}  {rates['shard']:>14.1f}  "
                  f"{rates['planned'] / rates['shard']:>17.2f}x  {rates['planned'] / first:>16.2f}x", flush=True)
            results.append(f"{batch}: {rates['planned']:.1f}" if batch == 1 else
                           f"{batch}: {rates['planned']:.1f} vs {rates['shard']:.1f} "
                           f"({rates['planned'] / rates['shard']:.2f}×)")
        record(f"local transformers backend (SmolLM2-135M, fp32, {torch.get_num_threads()} torch threads, "
               f"{args.requests} mixed-length requests, up to {args.max_tokens} new tokens) tokens/s by batch size: "
               "batches planned over the step by prompt length vs shard by shard in arrival order",
               "; ".join(results))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
