#!/usr/bin/env bash
# The main job on a fresh machine: the accelerator-supervisor firmware on an emulated Cortex-M4
# (QEMU, MPS2 AN386), with its telemetry decoded by the host tool `rustkernel`.
# Installs qemu-system-arm and the Rust target when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-system-arm >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends qemu-system-arm
fi
rustup target add thumbv7em-none-eabihf >/dev/null
cargo build -q -p rustkernel-host

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
(cd firmware-examples && cargo run --release -q) | tee "$log" | grep -v '^@RK '
qemu_rc=${PIPESTATUS[0]}
set -e
echo
echo "--- telemetry frames, decoded by \`rustkernel telemetry decode\` ---"
./target/debug/rustkernel telemetry decode "$log"
echo
echo "firmware exit code: $qemu_rc (0: the scenario ended as expected)"
exit "$qemu_rc"
