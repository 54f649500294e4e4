#!/usr/bin/env bash
# The one test command of the project (README.md, .ci/run). Installs what it needs on a fresh
# machine, then runs formatting, lints, tests, docs and the no_std / no-alloc proofs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints how long the one before it took; the last prints the whole run's time.
step_name=""
step_started=$SECONDS
step() {
  if [ -n "$step_name" ]; then
    local took=$((SECONDS - step_started))
    printf '    (%s: %d min %02d s)\n' "$step_name" $((took / 60)) $((took % 60))
  fi
  step_name="$*"
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
  df -h . | awk 'NR==2 {print "    (disk: " $3 " used, " $4 " free)"}'
}

# One-shot builds gain nothing from incremental caches, which would double the target directory.
export CARGO_INCREMENTAL=0

# Every Debian package the steps below use, in one `apt-get install` after one `apt-get update`
# (skipped when all are there); the scripts a step calls install their own only when run alone.
step "Debian packages: one install for every step"
packages=(
  qemu-system-arm binutils-arm-none-eabi  # firmware under QEMU, its size
  g++                                     # libFuzzer (fuzz)
  prometheus chromium                     # promtool, a real Prometheus, a real browser (observability)
  buildah curl musl-tools                 # the container image (image-check)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

step "toolchain components and targets"
rustup component add rustfmt clippy rust-src
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi x86_64-unknown-linux-musl

step "format"
cargo fmt --all -- --check

step "layout: no circle of imports in host/src, no non-test file of 700 lines or more"
./scripts/host-layout.py

# The committed PTX (host/cuda/ptx/) is what the pinned NVRTC 12.4 makes of host/cuda/*.cu, and
# every kernel assembles with ptxas for sm_80 and sm_90; prints registers and spills per kernel.
# Fetches the pinned compiler once into target/cuda-toolchain/ (scripts/build-ptx.sh).
step "PTX: regenerated with the pinned compiler and compared, then assembled (registers, spills)"
./scripts/ptx-check.sh

step "CUDA stub: a libcuda without a GPU, so --all-features (the worker's \`cuda\` feature) links and runs"
# Exports CUDA_LIBRARY_PATH, LD_LIBRARY_PATH and RUSTKERNEL_CUDA_STUB=1; host/tests/gpu_stub.rs
# then runs in the tests step below against the stub ("GPU unavailable: no device").
eval "$(./scripts/cuda-stub.sh --env)"

step "clippy (all features, then none)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
cargo test --workspace --all-features

# Issue 30: the alert rules (promtool check and unit tests), then three `rustkernel serve`
# processes (the tests step's binaries) scraped by a real Prometheus through faults: every
# panel of deploy/grafana/rustkernel.json returns data, the alerts the scenario drives reach
# pending or firing; the status page shows an open breaker in headless Chromium; README's curl
# lines answer what README shows.
step "observability: alert rules, a real Prometheus against the dashboard's panels, the status page in Chromium, README's curls"
./scripts/observability-check.py

step "loom: the shared breaker's lock-free paths under every interleaving of small models"
RUSTFLAGS="--cfg loom" cargo test -p rustkernel-tokio --test loom_breaker --release --target-dir target/loom

# Deterministic simulation (host/tests/sim, docs/simulation.md): the service
# against a simulated worker, CPU, network and clients, every fault from a seed; a release build
# with tokio's scheduler seeded, in a target directory of its own. Then the mutants of issue 19's
# two bugs (SIM_MUTANT rebuilds the host crate alone), each of which the seeds must catch.
step "simulation: 80 seeds x 10 simulated minutes of traffic, then each of two mutants must fail"
sim=(env RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/sim)
"${sim[@]}" cargo test --release -p rustkernel-host --test sim
for mutant in device_faults_to_kernel startup_waits_for_worker; do
  "${sim[@]}" SIM_MUTANT="$mutant" SIM_EXPECT=fail cargo test --release -p rustkernel-host --test sim
done

# Deploy check (owner: deploy/): kubernetes-validate on deploy/kubernetes.yaml (offline,
# pinned), `rustkernel config check` on its ConfigMap, and host/tests/deploy_manifest.rs.
step "deploy: the Kubernetes manifests, CPU and GPU (schemas, config check, image names, probe paths served)"
./scripts/k8s-check.sh

# Image check (owner: deploy/): scripts/build-image.sh builds the CPU image (one musl release
# build, then buildah FROM scratch), which scripts/image-check.sh inspects, mounts and runs from
# its root file system as the pod would (read-only, user 10001), and prints its size.
step "deploy: the container image (static binaries FROM scratch; config, files, a run from its root file system, size)"
./scripts/image-check.sh

step "dependencies: licenses against an allow-list, sources crates.io only, duplicate versions reported (cargo-deny, deny.toml)"
# The advisory check needs the RustSec database from GitHub, which this machine cannot fetch:
# run `cargo deny check advisories` where the network allows (README.md, "Security").
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi
cargo deny check licenses bans sources

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

# The public API of core, tokio and embassy adapters against the committed api/*.txt; a change
# to the surface fails here with its diff until the listing is regenerated and committed
# (scripts/public-api.sh; installs the pinned cargo-public-api when missing).
step "public API: the listings in api/ match the code"
./scripts/public-api.sh --check

step "no_std: the core builds for thumbv7em-none-eabihf with no features and with every no_std feature (serde, defmt)"
cargo build -p rustkernel-core --target thumbv7em-none-eabihf
cargo build -p rustkernel-core --target thumbv7em-none-eabihf --features serde,defmt

step "no_std: the embassy adapter builds for Cortex-M4F and Cortex-M0 (no compare-and-swap)"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  cargo build -p rustkernel-embassy --target "$target"
  cargo build -p rustkernel-embassy --target "$target" --features defmt
done

# embassy-time's tick rate is a cargo feature, unified across a workspace: the adapter's tests at
# 32.768 kHz are a crate and a workspace of their own, with a mock driver at that rate.
step "embassy adapter at 32.768 kHz: deadlines stay on their tick, timers never fire early (own workspace)"
(cd adapters/embassy/tick-32k && cargo fmt -- --check)
(cd adapters/embassy/tick-32k && cargo clippy --all-targets --target-dir ../../../target/tick-32k -- -D warnings)
(cd adapters/embassy/tick-32k && cargo test --target-dir ../../../target/tick-32k)

# Issue 33: the examples a new user starts from. The tokio ones serve on 127.0.0.1:0, drive
# themselves and must exit 0 within 10 s; the firmware library (a workspace of its own, so the
# adapter's dev-dependencies stay out of the thumb builds) builds for both cores and its host
# test runs on the mock clock.
step "examples: the axum service and the deadline client run on loopback; the firmware library builds for Cortex-M0 and Cortex-M4F"
cargo build -p rustkernel-tokio --features axum --example axum_service --example deadline_client
for example in axum_service deadline_client; do
  timeout 10 "target/debug/examples/$example"
done
(cd adapters/embassy/examples/firmware-lib && cargo fmt -- --check)
(cd adapters/embassy/examples/firmware-lib && cargo clippy --all-targets --target-dir ../../../../target/firmware-lib -- -D warnings)
(cd adapters/embassy/examples/firmware-lib && cargo test --target-dir ../../../../target/firmware-lib)
for target in thumbv6m-none-eabi thumbv7em-none-eabihf; do
  (cd adapters/embassy/examples/firmware-lib && cargo build --target "$target" --target-dir ../../../../target/firmware-lib)
done

step "no alloc: the core and the embassy adapter build against a standard library that has only core"
RUSTC_BOOTSTRAP=1 cargo build -p rustkernel-core --target thumbv7em-none-eabihf --features serde,defmt \
  -Zbuild-std=core --target-dir target/build-std-core
RUSTC_BOOTSTRAP=1 cargo build -p rustkernel-embassy --target thumbv6m-none-eabi --features defmt \
  -Zbuild-std=core --target-dir target/build-std-core

step "firmware on both boards (Cortex-M4F mps2-an386, Cortex-M0 microbit): build, run under QEMU, decode and check the telemetry, report sizes"
./scripts/firmware-e2e.sh

# --- fuzz (scripts/fuzz.sh; FUZZ_SECONDS per target, default 20) ---
step "fuzz: every decoder of outside bytes, ${FUZZ_TOTAL_SECONDS:-80} s shared among the targets, fails on a crash"
./scripts/fuzz.sh
# --- end fuzz ---

step "all checks passed"
printf '    (whole run: %d min %02d s)\n' $((SECONDS / 60)) $((SECONDS % 60))
