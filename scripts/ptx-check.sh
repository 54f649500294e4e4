#!/usr/bin/env bash
# Checks the committed PTX (host/cuda/ptx/*.ptx) without a GPU:
#   1. regenerates it from host/cuda/*.cu with the pinned compiler (scripts/build-ptx.sh,
#      NVRTC 12.4.127) into a temporary directory and fails with the diff when it differs
#      (a .cu edited without `scripts/build-ptx.sh`, or a PTX edited by hand);
#   2. assembles every PTX with the pinned ptxas (nvidia-cuda-nvcc-cu12==12.4.131) for sm_80
#      and sm_90 and prints each kernel's registers, spills and shared memory, so a change
#      that makes a kernel spill shows in the test log.
# The toolchain is fetched once into target/cuda-toolchain/ (scripts/build-ptx.sh --toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain="$(scripts/build-ptx.sh --toolchain)"
ptxas="$toolchain/nvidia/cuda_nvcc/bin/ptxas"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

env -u NVCC scripts/build-ptx.sh --out "$tmp/ptx" >/dev/null
if ! diff -ru host/cuda/ptx "$tmp/ptx"; then
  echo "ptx-check: host/cuda/ptx/ differs from what scripts/build-ptx.sh generates (diff above);" >&2
  echo "ptx-check: run scripts/build-ptx.sh and commit host/cuda/ptx/" >&2
  exit 1
fi
echo "ptx-check: host/cuda/ptx/ matches the sources (NVRTC 12.4.127)"

for ptx in host/cuda/ptx/*.ptx; do
  for arch in sm_80 sm_90; do
    # ptxas -v prints, per kernel: "Compiling entry function 'NAME' for 'ARCH'", then
    # "N bytes stack frame, N bytes spill stores, N bytes spill loads", then
    # "Used N registers, N bytes smem, ...".
    "$ptxas" -arch="$arch" -v "$ptx" -o "$tmp/out.cubin" 2>&1 | awk -v file="$(basename "$ptx")" -v arch="$arch" '
      /Compiling entry function/ { split($0, q, "'\''"); kernel = q[2] }
      /spill stores/ { sub(/^[ \t]+/, ""); spills = $0 }
      /Used [0-9]+ registers/ {
        sub(/^ptxas info *: */, "")
        printf "ptx-check: %-9s %-5s %-20s %s; %s\n", file, arch, kernel, $0, spills
      }
      /error|warning/ { print; bad = 1 }
      END { exit bad }'
  done
done
