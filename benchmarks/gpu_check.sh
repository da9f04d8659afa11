#!/usr/bin/env bash
# One prepared run for a lent GPU machine (issue 19): builds rnnfast with its
# CUDA module, runs the GPU tests against the CPU kernels, then the GPU
# benchmark against PyTorch on cuda. Prints everything; writes the results to
# ${OUT:-.}/gpu_results.json. Usage: bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
nvidia-smi || true
python3 -m venv /tmp/rnnfast-gpu
RNNFAST_CUDA=ON /tmp/rnnfast-gpu/bin/pip install ".[test,cuda]" torch
/tmp/rnnfast-gpu/bin/python -m rnnfast info
/tmp/rnnfast-gpu/bin/python -m pytest -m gpu tests/test_gpu.py -q -rs
# Again without CUDA graphs: a graph problem shows as a difference between the runs.
RNNFAST_CUDA_GRAPHS=0 /tmp/rnnfast-gpu/bin/python -m pytest -m gpu tests/test_gpu.py -q
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/rnnfast-gpu/bin/python benchmarks/compare.py \
    --device gpu --rounds 3 --json "$OUT/gpu_results.json"
