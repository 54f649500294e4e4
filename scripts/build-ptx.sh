#!/usr/bin/env bash
# Regenerates the PTX of the GPU worker's kernels (host/cuda/*.cu -> host/cuda/ptx/*.ptx) with
# a pinned compiler that needs no GPU and no CUDA install: NVRTC from the PyPI wheel
# nvidia-cuda-nvrtc-cu12==12.4.127 (the CUDA C++ front end and NVVM back end nvcc runs for
# device code), driven by host/cuda/nvrtc_ptx.py. The PTX is committed and embedded in the
# worker (host/cuda/src/lib.rs, include_str!), so a default install needs no PTX directory;
# `rustkernel-worker --ptx-dir DIR` still loads DIR/*.ptx instead.
#
# Why CUDA 12.4: its PTX is ISA 8.4, which every driver from 550.54.14 (Linux) JIT-compiles;
# newer toolkits raise that floor (CUDA 13.0's ISA 9.0 needs 580+). Target compute_80 (A100
# and newer: sm_80, 86, 89, 90, ...); the driver JIT-compiles it for the GPU it finds.
#
#   scripts/build-ptx.sh                  regenerate host/cuda/ptx/ (commit the result)
#   scripts/build-ptx.sh --out DIR        write to DIR instead (scripts/ptx-check.sh)
#   scripts/build-ptx.sh --toolchain      fetch the pinned toolchain; print its directory
#   NVCC=/path/to/nvcc scripts/build-ptx.sh   use a local nvcc instead (same options; its
#                                         PTX differs from the committed one, and
#                                         scripts/ptx-check.sh ignores NVCC)
#
# The toolchain is downloaded once (pip download, hashes pinned below) into
# target/cuda-toolchain/ and reused; x86_64 Linux only (the hashes are of those wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_WHEEL=nvidia-cuda-nvrtc-cu12==12.4.127
NVRTC_SHA256=a178759ebb095827bd30ef56598ec182b85547f1508941a3d560eb7ea1fbf338
# ptxas of the same release, for scripts/ptx-check.sh (the wheel has no nvcc).
NVCC_WHEEL=nvidia-cuda-nvcc-cu12==12.4.131
NVCC_SHA256=e4c9a35435c3b0e36c6397c5696334c9ea6650e524736cbd1c5d345ea099bb04
ARCH=compute_80
NVRTC_OPTIONS=(--gpu-architecture="$ARCH" -default-device --std=c++17)
# NVRTC has no -O flag: device code is fully optimised unless -G is given, as with nvcc.

toolchain="${CUDA_TOOLCHAIN_DIR:-$PWD/target/cuda-toolchain/12.4}"

fetch_toolchain() {
  local stamp="$toolchain/.complete"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$NVRTC_SHA256 $NVCC_SHA256" ]; then
    return
  fi
  if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "build-ptx: the pinned toolchain is x86_64 Linux wheels; use NVCC=... here" >&2
    exit 1
  fi
  echo "build-ptx: fetching $NVRTC_WHEEL and $NVCC_WHEEL into $toolchain" >&2
  rm -rf "$toolchain"
  mkdir -p "$toolchain/wheels"
  printf '%s --hash=sha256:%s\n%s --hash=sha256:%s\n' \
    "$NVRTC_WHEEL" "$NVRTC_SHA256" "$NVCC_WHEEL" "$NVCC_SHA256" >"$toolchain/requirements.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux2014_x86_64 --python-version 3 \
    -r "$toolchain/requirements.txt" -d "$toolchain/wheels" >&2
  python3 - "$toolchain" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
for wheel in sorted((root / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root)
PY
  chmod +x "$toolchain/nvidia/cuda_nvcc/bin/ptxas"
  echo "$NVRTC_SHA256 $NVCC_SHA256" >"$stamp"
}

out=host/cuda/ptx
case "${1:-}" in
  --toolchain)
    fetch_toolchain
    echo "$toolchain"
    exit 0
    ;;
  --out)
    out="${2:?--out needs a directory}"
    ;;
  "") ;;
  *)
    echo "usage: scripts/build-ptx.sh [--out DIR | --toolchain]" >&2
    exit 2
    ;;
esac

mkdir -p "$out"
if [ -n "${NVCC:-}" ]; then
  for src in host/cuda/*.cu; do
    name="$(basename "$src" .cu)"
    "$NVCC" --ptx -arch="$ARCH" -std=c++17 -o "$out/$name.ptx" "$src"
    echo "build-ptx: $src -> $out/$name.ptx ($NVCC)"
  done
  exit 0
fi

fetch_toolchain
libnvrtc="$toolchain/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
for src in host/cuda/*.cu; do
  name="$(basename "$src" .cu)"
  python3 host/cuda/nvrtc_ptx.py "$libnvrtc" "$src" "$out/$name.ptx" "${NVRTC_OPTIONS[@]}"
  echo "build-ptx: $src -> $out/$name.ptx (NVRTC 12.4.127, $ARCH)"
done
