#!/usr/bin/env bash
# The decode bench on a lent GPU machine (issue 18): one command, under 8 minutes. It uses that machine's own
# python3 (JAX with CUDA, torch, transformers are there; nothing can be installed) and this checkout on
# PYTHONPATH. Goal there: end-to-end >= 80 % of encoder-only for ViT-B/32 and ViT-L/14 on 20k JPEGs.
#   run: bash bench/gpu_decode.sh      (via the device tool; output also in $OUT/decode_bench.txt)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}/decode_bench.txt"
python3 -m pip install --no-deps --quiet zarr diskcache json-repair 2>/dev/null || true   # absent offline: reported below
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out"
PYTHONPATH=. timeout 460 python3 bench/decode_bench.py --images 20000 --models b32,l14 --batch 128 \
    --workers 1,4,8,16 2>&1 | tee -a "$out"
