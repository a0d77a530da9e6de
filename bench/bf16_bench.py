"""bf16 against fp32 CLIP encoding on this CPU: throughput and what it does to rankings.

1. Throughput: cirkit's ViT-B/32 (random weights) encodes the same images and texts in fp32 and bf16, in this
   process, batch 32; printed as images/s and texts/s and the bf16/fp32 ratio, with the largest difference
   between the two unit-normalised embeddings.
2. Rankings: the demo experiment (the built-in benchmark, cirkit's trained CLIP) run twice in one store, with
   ``embed.dtype`` float32 and bfloat16; compared with ``cirkit diff``'s tolerance on embeddings (1e-3 max
   abs difference), the top-k overlap of every retrieval step and every metric's delta.

``python bench/bf16_bench.py [--store DIR] [--skip-rankings] [--demo-set KEY=VALUE ...]``: without ``--store`` the demo runs cold in a
temporary store (its CLIP training dominates: minutes); a store that already holds the fp32 demo reuses it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from machine import cpu_flags, describe, matmul_peak  # noqa: E402
from rows import record  # noqa: E402

DIFF_TOLERANCE = 1e-3  # the default of `cirkit diff --tolerance`


def _best_times(fns: dict, repeats: int) -> dict:
    """The fastest of ``repeats`` timed calls of each function, taken in turns (so that a change in the
    machine's load during the run falls on both alike); each is called once before, to compile."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def throughput(batch: int = 32, repeats: int = 3) -> list[tuple[str, str, str]]:
    import torch
    from clip_fixtures import write_tokenizer
    from transformers import CLIPConfig, CLIPModel

    from cirkit.encoders.clip_encoder import ClipEncoder

    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_tokenizer(Path(tmp))
        config = CLIPConfig(text_config={"vocab_size": vocab, "eos_token_id": vocab - 1, "bos_token_id": vocab - 2},
                            vision_config={})  # defaults are ViT-B/32
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(tmp, safe_serialization=True)
        rng = np.random.default_rng(0)
        pixels = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
        ids = rng.integers(0, vocab - 2, (batch, 77)).astype(np.int32)
        ids[:, 0], ids[:, -1] = vocab - 2, vocab - 1
        encoders = {dtype: ClipEncoder(tmp, dtype=dtype, buckets=(batch,)) for dtype in ("float32", "bfloat16")}
        fns = {}
        for dtype, enc in encoders.items():
            fns[(dtype, 0)] = lambda e=enc: e.encode_pixels(pixels)
            fns[(dtype, 1)] = lambda e=enc: e.encode_token_ids(ids)
        best = _best_times(fns, repeats)
        rates = {dtype: (batch / best[(dtype, 0)], batch / best[(dtype, 1)]) for dtype in encoders}
        outs = {dtype: (_unit(fns[(dtype, 0)]()), _unit(fns[(dtype, 1)]())) for dtype in encoders}
    rows = []
    peaks = {"float32": 0.0, "bfloat16": 0.0}
    for _ in range(3):  # in turns, best of three: the machine may be shared
        for dtype in peaks:
            peaks[dtype] = max(peaks[dtype], matmul_peak(2048, 5, dtype))
    ratio = peaks["bfloat16"] / peaks["float32"]
    rows.append(("jitted 2048^3 matmul GFLOP/s, fp32 vs bf16", f"{peaks['float32']:.0f} vs {peaks['bfloat16']:.0f} "
                 f"({ratio:.2f}x)", ""))
    record("jitted 2048³ matmul GFLOP/s, fp32 vs bf16 (what XLA's CPU backend makes of bf16 here)",
           f"{peaks['float32']:.0f} vs {peaks['bfloat16']:.0f} ({ratio:.2f}×)")
    for i, what in enumerate(("images/s", "texts/s")):
        f32, b16 = rates["float32"][i], rates["bfloat16"][i]
        diff = float(np.abs(outs["float32"][i] - outs["bfloat16"][i]).max())
        record(f"CLIP ViT-B/32 {what}, cirkit fp32 vs bf16 (batch {batch}; max |difference| of unit embeddings)",
               f"{f32:.1f} vs {b16:.1f} ({b16 / f32:.2f}×; {diff:.1e})")
        rows.append((f"ViT-B/32 {what}, fp32 vs bf16 (batch {batch}); bf16/fp32",
                     f"{f32:.1f} vs {b16:.1f} ({b16 / f32:.2f}x)", ""))
        rows.append((f"ViT-B/32 {what.split('/')[0]}: max |fp32 - bf16| of unit embeddings", f"{diff:.1e}",
                     f"<= {DIFF_TOLERANCE:g}"))
    return rows


def _run_demo(store: str, name: str, dtype: str, overrides: list[str]) -> float:
    cmd = [sys.executable, "-m", "cirkit.cli", "run", str(HERE.parent / "experiments" / "demo.toml"), "--store", store,
           "--name", name, "--quiet", "--set", f"embed.dtype={dtype}"]
    for item in overrides:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    return time.perf_counter() - t0


def rankings(store: str, overrides: list[str]) -> list[tuple[str, str, str]]:
    from cirkit.engine import Store
    from cirkit.experiment.diff import diff_runs, stored_value

    t32 = _run_demo(store, "bf16-bench-float32", "float32", overrides)
    t16 = _run_demo(store, "bf16-bench-bfloat16", "bfloat16", overrides)
    cached = _run_demo(store, "bf16-bench-float32", "float32", overrides)
    s = Store(store)
    report = diff_runs(s, "bf16-bench-float32", "bf16-bench-bfloat16", tolerance=DIFF_TOLERANCE)
    steps = {name: {st["step"]: st for st in s.get_run(name)["steps"]}
             for name in ("bf16-bench-float32", "bf16-bench-bfloat16")}
    a, b = steps["bf16-bench-float32"], steps["bf16-bench-bfloat16"]
    worst_embed, within = 0.0, True
    overlap: dict[int, list[float]] = {1: [], 10: [], 50: []}
    identical_lists = total_lists = 0
    for entry in report["differ"]:
        content = entry.get("content") or {}
        if "max_abs_diff" in content:
            worst_embed = max(worst_embed, content["max_abs_diff"])
            within &= content["within_tolerance"]
    for name, step in a.items():
        if not name.endswith("/retrieve") or name not in b:
            continue
        ra, rb = stored_value(s, step["output"]), stored_value(s, b[name]["output"])
        for q in range(len(ra.query_ids)):
            la, lb = ra.ranked_ids(q), rb.ranked_ids(q)
            total_lists += 1
            identical_lists += la == lb
            for k in overlap:
                if k <= len(la):
                    overlap[k].append(len(set(la[:k]) & set(lb[:k])) / k)
    deltas = [abs(m["delta"]) for m in report["metrics"] if m["delta"] is not None]
    worst_metric = max(report["metrics"], key=lambda m: abs(m["delta"] or 0), default=None)
    rows = [
        ("demo (built-in benchmark" + (f", {' '.join(overrides)}" if overrides else "") + ") fp32 / bf16 / "
         "fp32 fully cached run (s)", f"{t32:.0f} / {t16:.0f} / {cached:.1f}", ""),
        ("built-in benchmark: max |fp32 - bf16| over stored embeddings", f"{worst_embed:.1e}",
         f"<= {DIFF_TOLERANCE:g}"),
        ("built-in benchmark: embeddings within cirkit diff's tolerance", "yes" if within else "no", "yes"),
        ("built-in benchmark: ranked lists identical (all retrieval steps)",
         f"{identical_lists:,} of {total_lists:,} ({identical_lists / max(1, total_lists):.1%})", ""),
    ]
    for k, values in overlap.items():
        if values:
            rows.append((f"built-in benchmark: mean / min top-{k} overlap fp32 vs bf16",
                         f"{np.mean(values):.4f} / {np.min(values):.2f}", ""))
    rows.append(("built-in benchmark: metrics that changed / largest |delta| (points)",
                 f"{len(deltas)} / {max(deltas, default=0.0):.2f}"
                 + (f" ({worst_metric['metric']})" if worst_metric and worst_metric["delta"] else ""), ""))
    return rows


def record_rankings(rows: list[tuple[str, str, str]], cold: bool = True) -> None:
    """The README rows of the ranking comparison (and, when the demo ran in a fresh store, its cold and cached
    times)."""
    found = {name.split(": ", 1)[-1]: value for name, value, _ in rows}
    demo = next((name for name, _, _ in rows if name.startswith("demo (")), None)
    if demo is None:
        return
    t32, _, cached = found[demo].split(" / ")
    setting = demo.split(") ", 1)[0].removeprefix("demo (built-in benchmark").lstrip(", ")
    if cold:
        record("`cirkit demo` cold / fully cached (separate processes" + (f", {setting}" if setting else "") + ")",
               f"{t32} s / {cached} s", "≤ ~10 min / ≤ 10 s")
    overlap = "; ".join(f"top-{k} {found[key]}" for k in (1, 10, 50)
                        if (key := f"mean / min top-{k} overlap fp32 vs bf16") in found)
    record("bf16 vs fp32 embeddings on the built-in benchmark (demo, cirkit's CLIP): max |difference| vs `cirkit diff`'s "
           f"tolerance {DIFF_TOLERANCE:g}; identical ranked lists; mean / min top-k overlap; metrics changed",
           f"{found['max |fp32 - bf16| over stored embeddings']}; {found['ranked lists identical (all retrieval steps)']}; "
           f"{overlap}; {found['metrics that changed / largest |delta| (points)']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="a store to run the demo in (reuses its trained CLIP); default: a temporary one")
    parser.add_argument("--skip-rankings", action="store_true", help="throughput only")
    parser.add_argument("--demo-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for both demo runs (e.g. train.steps=250 on a busy machine)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    print(f"CPU bf16 support: {', '.join(f for f in cpu_flags() if 'bf16' in f or f == 'amx_bf16') or 'none listed'}")
    rows = throughput(args.batch, args.repeats)
    if not args.skip_rankings:
        if args.store:
            rows += rankings(args.store, args.demo_set)
        else:
            with tempfile.TemporaryDirectory(prefix="cirkit-bf16-") as tmp:
                rows += rankings(tmp, args.demo_set)
    print(f"{'measure':<84}{'value':>26}{'goal':>9}")
    record_rankings(rows, cold=not args.store)  # a given store may hold the demo already
    for name, value, goal in rows:
        print(f"{name:<84}{value:>26}{goal:>9}")


if __name__ == "__main__":
    main()
