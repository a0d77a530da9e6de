"""Files -> stored embeddings: is decoding keeping the encoder busy?

Measured in one run on the same synthetic JPEG gallery (640×480, like COCO) and the same random CLIP weights:
- decoding + preprocessing throughput with 1, 2, 4, … threads (no encoder);
- encoder-only throughput on pre-decoded pixels (the reference);
- end-to-end ``embed_images`` (files → stored embeddings, a fresh store) serial and with the decoding pool,
  as a percentage of encoder-only, and the decode share of the serial end-to-end time.
On a CPU the decoder and the encoder compete for the same cores; on a GPU the goal is end-to-end ≥ 80 % of
encoder-only. ``python bench/decode_bench.py [--images N] [--models b32,l14] [--batch 32] [--dtype float32]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from machine import describe, matmul_peak  # noqa: E402
from rows import record  # noqa: E402

MODELS = {"b32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=32),
          "l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14)}


def write_gallery(folder: Path, n: int) -> list[str]:
    """Smooth random colour fields + noise saved as quality-90 JPEGs (decode cost like a real photo's)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    paths = []
    for i in range(n):
        c = rng.uniform(0, 1, (3, 3))
        img = (c[:, 0, None, None] * 255 * (xx / 640) + c[:, 1, None, None] * 255 * (yy / 480)) / 2
        img = img + rng.normal(0, 12, img.shape) + 60 * c[:, 2, None, None]
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)).save(path, quality=90)
        paths.append(str(path))
    return paths


def write_clip(folder: Path, model: str) -> None:
    """Random weights in the real CLIPModel format (transformers + torch write them)."""
    import torch
    from clip_fixtures import write_tokenizer
    from transformers import CLIPConfig, CLIPModel

    vocab = write_tokenizer(folder)
    config = CLIPConfig(text_config={"vocab_size": vocab, "eos_token_id": vocab - 1, "bos_token_id": vocab - 2},
                        vision_config=MODELS[model])
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder, safe_serialization=True)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--models", default="b32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--workers", default="1,2,4")
    args = ap.parse_args()

    from cirkit.data.model import ImageRef
    from cirkit.encoders.clip_encoder import ClipEncoder
    from cirkit.encoders.decode import default_workers, pixel_batches
    from cirkit.encoders.stages import EmbedConfig, clip_checkpoint, embed_images
    from cirkit.engine import Engine, Store

    print(describe(matmul_peak()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        t0 = time.perf_counter()
        paths = write_gallery(tmp / "images", args.images)
        print(f"gallery: {len(paths)} JPEGs 640x480 written in {time.perf_counter() - t0:.1f} s")
        for model in args.models.split(","):
            folder = tmp / model
            write_clip(folder, model)
            enc = ClipEncoder(str(folder), args.dtype, buckets=(args.batch,))
            decode = {}
            for w in [int(x) for x in args.workers.split(",")]:
                t0 = time.perf_counter()
                pixels = np.concatenate(list(pixel_batches(paths, None, enc.prep, args.batch, w)))
                decode[w] = rate(len(paths), time.perf_counter() - t0)
            enc.encode_pixels(pixels[: args.batch])  # compile
            t0 = time.perf_counter()
            for s in range(0, len(pixels), args.batch):
                enc.encode_pixels(pixels[s : s + args.batch])
            encoder_only = rate(len(paths), time.perf_counter() - t0)
            images = tuple(ImageRef(f"{i}", p) for i, p in enumerate(paths))
            ckpt = clip_checkpoint(str(folder))
            e2e = {}
            for w in (1, default_workers()):
                engine = Engine(Store(str(tmp / f"store-{model}-{w}")), progress=False)
                cfg = EmbedConfig(dtype=args.dtype, batch_size=args.batch, decode_workers=w)
                t0 = time.perf_counter()
                engine.run(embed_images, cfg, images=images, model=ckpt).value  # noqa: B018
                e2e[w] = rate(len(paths), time.perf_counter() - t0)
            print(f"\nCLIP {model} ({args.dtype}, batch {args.batch}), {len(paths)} images")
            print("  decode+preprocess images/s by threads: " + ", ".join(f"{w}: {r:.0f}" for w, r in decode.items()))
            print(f"  encoder only (pre-decoded pixels):      {encoder_only:.1f} images/s  (reference)")
            for w, r in e2e.items():
                print(f"  end to end, files -> stored, {w} thread(s): {r:.1f} images/s = {100 * r / encoder_only:.0f} % of encoder-only")
            serial_decode_share = (1 / decode[min(decode)]) / (1 / e2e[1])
            print(f"  decode share of the serial end-to-end time: {100 * serial_decode_share:.0f} %")
            label = f"CLIP {model} ({args.dtype}, batch {args.batch}), {len(paths)} 640×480 JPEGs"
            record(f"{label}: decode+preprocess images/s by threads",
                   ", ".join(f"{w}: {r:.0f}" for w, r in decode.items()))
            record(f"{label}: end to end (files → stored) images/s by decode threads, and % of encoder-only "
                   f"({encoder_only:.1f} images/s on pre-decoded pixels)",
                   ", ".join(f"{w}: {r:.1f} ({100 * r / encoder_only:.0f} %)" for w, r in e2e.items()))
            record(f"{label}: decode share of the serial end-to-end time", f"{100 * serial_decode_share:.0f} %")


if __name__ == "__main__":
    main()
