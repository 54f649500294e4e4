#!/usr/bin/env bash
# End-to-end test of the firmware example: builds `accelerator_supervisor` for the Cortex-M4F,
# runs it under QEMU (mps2-an386), decodes its telemetry with `rustkernel telemetry decode` and
# checks the scenario frame by frame, then reports and checks the firmware's size.
#
# Installs what it needs on a fresh Debian machine (qemu-system-arm, binutils-arm-none-eabi, the
# Rust target). Exits non-zero on any failure, except the size goals (flash < 32 KiB, static
# RAM < 8 KiB): a miss prints a warning, and fails only with FIRMWARE_SIZE_STRICT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "tools: qemu-system-arm, arm-none-eabi-size, thumbv7em-none-eabihf"
missing=()
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v arm-none-eabi-size >/dev/null 2>&1 || missing+=(binutils-arm-none-eabi)
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
qemu-system-arm --version | head -n 1
rustup target add thumbv7em-none-eabihf

step "firmware: format and lints (its own workspace)"
(cd firmware-examples && cargo fmt -- --check)
(cd firmware-examples && cargo clippy --release -- -D warnings)
(cd firmware-examples && cargo clippy --release --features defmt --target-dir target/defmt -- -D warnings)

step "firmware: the defmt variant builds"
(cd firmware-examples && cargo build --release --features defmt --target-dir target/defmt)

step "firmware: build (release)"
(cd firmware-examples && cargo build --release)
ELF=$ROOT/firmware-examples/target/thumbv7em-none-eabihf/release/accelerator_supervisor

step "host: build the decoder"
cargo build -p rustkernel-host
RUSTKERNEL=$ROOT/target/debug/rustkernel

step "run under QEMU (timeout 120 s), decode the telemetry"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set +e
(cd firmware-examples && timeout 120 cargo run --release -q) 2>"$work/qemu.err" \
  | tee "$work/run.log" \
  | cargo run -q -p rustkernel-host -- telemetry decode - --format json >"$work/frames.jsonl"
status=("${PIPESTATUS[@]}")
set -e
qemu_rc=${status[0]}
decode_rc=${status[2]}
echo "--- firmware log (frames elided) ---"
grep -v '^@RK ' "$work/run.log" || true
echo "--- telemetry, decoded ---"
"$RUSTKERNEL" telemetry decode "$work/run.log"
if [ -s "$work/qemu.err" ]; then
  echo "--- QEMU stderr ---"
  cat "$work/qemu.err"
fi
if [ "$qemu_rc" -ne 0 ]; then
  echo "FAIL: the firmware exited with $qemu_rc (0 means the scenario ended as expected; 124: timeout)" >&2
  exit 1
fi
if [ "$decode_rc" -ne 0 ]; then
  echo "FAIL: rustkernel telemetry decode exited with $decode_rc" >&2
  exit 1
fi

step "check the frames: each JSON line has its kind; the scenario's milestones are there"
expect() { # expect DESCRIPTION PATTERN...: every pattern on one line of frames.jsonl
  local description=$1
  shift
  local lines
  lines=$(cat "$work/frames.jsonl")
  for pattern in "$@"; do
    lines=$(grep -F -- "$pattern" <<<"$lines" || true)
  done
  if [ -z "$lines" ]; then
    echo "FAIL: no frame for: $description" >&2
    exit 1
  fi
  echo "ok: $description"
}
expect "hello" '"kind":"hello"'
expect "burst absorbed by retries" '"kind":"job"' '"attempts":3' '"outcome":"done"'
expect "breaker opened" '"kind":"breaker"' '"from":"Closed","to":"Open"'
expect "half-open probe" '"kind":"breaker"' '"from":"Open","to":"HalfOpen"'
expect "closed again" '"kind":"breaker"' '"from":"HalfOpen","to":"Closed"'
expect "restart counted" '"kind":"recovery"' '"Restart"' '"attempt":2'
expect "escalated to degrade" '"kind":"recovery"' '"Escalate":"Degrade"'
expect "escalated to the operator" '"kind":"recovery"' '"Escalate":"NotifyOperator"'
expect "fallback jobs" '"kind":"job"' '"outcome":"fallback"'
expect "final summary" '"kind":"summary"' '"restarts":3' '"escalations":2'
if [ "$(tail -n 1 "$work/frames.jsonl" | grep -c '"kind":"summary"')" -ne 1 ]; then
  echo "FAIL: the summary is not the last frame" >&2
  exit 1
fi

step "check the sequence in order (host/tests/firmware_e2e.rs on this run's output)"
RUSTKERNEL_FIRMWARE_LOG="$work/run.log" cargo test -p rustkernel-host --test firmware_e2e

step "the host service ingests this run (file, TCP, stdin) and a live QEMU run; /health and /metrics agree with its summary"
RUSTKERNEL_FIRMWARE_LOG="$work/run.log" cargo test -p rustkernel-host --test edge_ingest

step "size of accelerator_supervisor (arm-none-eabi-size)"
arm-none-eabi-size -A "$ELF" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit) '
read -r text data bss _ < <(arm-none-eabi-size "$ELF" | tail -n 1)
flash=$((text + data))
ram=$((data + bss))
printf '| %-10s | %8s |\n' "part" "bytes"
printf '| %-10s | %8s |\n' "----------" "--------"
printf '| %-10s | %8d |\n' ".text+ro" "$text" ".data" "$data" ".bss" "$bss"
printf '| %-10s | %8d |\n' "flash" "$flash" "static RAM" "$ram"
size_ok=1
if [ "$flash" -ge 32768 ]; then
  echo "size goal missed: flash $flash B >= 32 KiB" >&2
  size_ok=0
fi
if [ "$ram" -ge 8192 ]; then
  echo "size goal missed: static RAM $ram B >= 8 KiB" >&2
  size_ok=0
fi
if [ "$size_ok" -eq 0 ]; then
  if [ "${FIRMWARE_SIZE_STRICT:-0}" = "1" ]; then
    exit 1
  fi
  echo "WARNING: size goals missed (set FIRMWARE_SIZE_STRICT=1 to fail on it)" >&2
else
  echo "ok: flash $flash B < 32 KiB, static RAM $ram B < 8 KiB (stack not included)"
fi

step "firmware end-to-end: all checks passed"
