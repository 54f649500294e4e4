#!/usr/bin/env bash
# The main job on a fresh machine: `rustkernel demo` starts the kernel service in-process on an
# ephemeral port and drives it over HTTP through an error burst, a latency spike and a hang,
# with a live view and a summary table. Deterministic for a given seed (DEMO_SEED, default 42).
# Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p rustkernel-host --bin rustkernel
exec ./target/release/rustkernel demo --seed "${DEMO_SEED:-42}"
