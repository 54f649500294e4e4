#!/usr/bin/env bash
# Regenerates the PTX of the GPU worker's kernels (host/cuda/*.cu -> host/cuda/ptx/*.ptx) with
# nvcc. Needs the CUDA toolkit; machines without it cannot run this (the repository then has
# no PTX, and the CUDA worker reports "GPU unavailable: no PTX (...)" instead of starting).
#
#   CUDA_ARCH=sm_90 scripts/build-ptx.sh      # default sm_70; the driver JIT-compiles PTX
#                                             # for newer GPUs (double atomicAdd needs sm_60+)
# Point the worker at the output with `--ptx-dir host/cuda/ptx` (GpuConfig::ptx_dir).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${CUDA_ARCH:-sm_70}"
out="${PTX_OUT:-host/cuda/ptx}"
if ! command -v nvcc >/dev/null 2>&1; then
  echo "build-ptx: nvcc not found; install the CUDA toolkit to regenerate the PTX" >&2
  exit 1
fi
mkdir -p "$out"
for src in host/cuda/*.cu; do
  name="$(basename "$src" .cu)"
  nvcc --ptx -arch="$arch" -O3 -o "$out/$name.ptx" "$src"
  echo "build-ptx: $src -> $out/$name.ptx"
done
