"""cirkit's JAX CLIP against transformers' PyTorch CLIPModel: same random ViT-B/32 weights, batch 32, this CPU.

Prints images/s and texts/s of both and their ratio (goal >= 1.5x), and the GFLOP/s cirkit achieves against
a float32 matmul peak measured in the same run (goal >= 50 %). ``python bench/clip_bench.py [BATCH] [REPEATS]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import matmul_peak  # noqa: E402
from rows import record  # noqa: E402


def tower_flops(tokens: int, hidden: int, inter: int, layers: int) -> float:
    per_layer = tokens * (8 * hidden * hidden + 4 * hidden * inter) + 4 * tokens * tokens * hidden
    return float(layers * per_layer)


def timed(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main(batch: int = 32, repeats: int = 3) -> None:
    import torch
    from clip_fixtures import write_tokenizer
    from transformers import CLIPConfig, CLIPModel

    from cirkit.encoders.clip_encoder import ClipEncoder

    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_tokenizer(Path(tmp))
        config = CLIPConfig(text_config={"vocab_size": vocab, "eos_token_id": vocab - 1, "bos_token_id": vocab - 2},
                            vision_config={})  # defaults are ViT-B/32
        torch.manual_seed(0)
        model = CLIPModel(config).eval()
        model.save_pretrained(tmp, safe_serialization=True)
        enc = ClipEncoder(tmp, buckets=(batch,))
        rng = np.random.default_rng(0)
        pixels = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
        ids = rng.integers(0, vocab - 2, (batch, 77)).astype(np.int32)
        ids[:, 0], ids[:, -1] = vocab - 2, vocab - 1
        tp, ti = torch.tensor(pixels), torch.tensor(ids, dtype=torch.long)
        with torch.inference_mode():
            t_img_torch = timed(lambda: model.get_image_features(pixel_values=tp), repeats)
            t_txt_torch = timed(lambda: model.get_text_features(input_ids=ti), repeats)
        t_img_jax = timed(lambda: enc.encode_pixels(pixels), repeats)
        t_txt_jax = timed(lambda: enc.encode_token_ids(ids), repeats)
        with torch.inference_mode():
            diff = np.abs(enc.encode_pixels(pixels[:4]) - model.get_image_features(pixel_values=tp[:4]).pooler_output.numpy()).max()
        v, t = config.vision_config, config.text_config
        n_patch = (v.image_size // v.patch_size) ** 2
        img_flops = tower_flops(n_patch + 1, v.hidden_size, v.intermediate_size, v.num_hidden_layers) \
            + 2 * n_patch * 3 * v.patch_size**2 * v.hidden_size
        txt_flops = tower_flops(77, t.hidden_size, t.intermediate_size, t.num_hidden_layers)
        peak = matmul_peak()
    rows = [
        ("images/s", batch / t_img_torch, batch / t_img_jax, img_flops),
        ("texts/s", batch / t_txt_torch, batch / t_txt_jax, txt_flops),
    ]
    print(f"ViT-B/32 random weights, batch {batch}, {jax.devices()[0].platform}, max |jax - torch| = {diff:.2e}")
    print(f"float32 matmul peak (2048^3, jit): {peak:.1f} GFLOP/s")
    print(f"{'':<10}{'torch':>10}{'cirkit':>10}{'ratio':>8}{'goal':>7}{'GFLOP/s':>10}{'of peak':>9}{'goal':>6}")
    for name, torch_rate, jax_rate, flops in rows:
        gflops = jax_rate * flops / 1e9
        print(f"{name:<10}{torch_rate:>10.1f}{jax_rate:>10.1f}{jax_rate / torch_rate:>7.2f}x{'1.5x':>7}"
              f"{gflops:>10.1f}{gflops / peak:>8.0%}{'50%':>6}")
        record(f"CLIP ViT-B/32 {name}, cirkit JAX vs transformers torch (batch {batch}, fp32)",
               f"{jax_rate:.1f} vs {torch_rate:.1f} ({jax_rate / torch_rate:.2f}×)", "≥ 1.5×")
        record(f"CLIP ViT-B/32 {name.split('/')[0]}: GFLOP/s achieved vs the jit matmul peak ({peak:.0f} GFLOP/s)",
               f"{gflops:.0f} ({gflops / peak:.0%})", "≥ 50 %")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
