#!/usr/bin/env bash
# The CUDA path without a GPU. Builds a stub libcuda.so.1 (scripts/cuda-stub/libcuda_stub.c:
# cuInit answers CUDA_ERROR_NO_DEVICE) with the system C compiler, then builds the `cuda`
# feature of rustkernel-host against it (cust 0.3.2's build script looks for
# $CUDA_LIBRARY_PATH/lib64) and runs host/tests/gpu_stub.rs, which starts the CUDA worker and
# checks that it reports "GPU unavailable: no device" and that the executor fails over to the CPU.
#
#   scripts/cuda-stub.sh          build the stub and run the stub test
#   scripts/cuda-stub.sh --env    build the stub only and print the exports that let
#                                 `cargo ... --all-features` build and run against it:
#                                 eval "$(scripts/cuda-stub.sh --env)"
set -euo pipefail
cd "$(dirname "$0")/.."

stub_dir="${CUDA_STUB_DIR:-$PWD/target/cuda-stub}"
mkdir -p "$stub_dir/lib64"
${CC:-cc} -shared -fPIC -O2 -Wall -Wextra -Werror -Wl,-soname,libcuda.so.1 \
  -I scripts/cuda-stub -o "$stub_dir/lib64/libcuda.so.1" scripts/cuda-stub/libcuda_stub.c
ln -sf libcuda.so.1 "$stub_dir/lib64/libcuda.so"

exports="export CUDA_LIBRARY_PATH='$stub_dir'
export LD_LIBRARY_PATH='$stub_dir/lib64'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export RUSTKERNEL_CUDA_STUB=1"

if [ "${1:-}" = "--env" ]; then
  printf '%s\n' "$exports"
  exit 0
fi

eval "$exports"
echo "==> stub libcuda in $stub_dir/lib64; building the cuda worker and running the stub test"
cargo test -p rustkernel-host --features cuda --test gpu_stub -- --nocapture
