#!/usr/bin/env bash
# Fuzzes every decoder that reads outside bytes (fuzz/fuzz_targets/, one target each) and fails
# on the first crash. The time is constant as targets are added: FUZZ_TOTAL_SECONDS (default 80)
# shared equally among the targets (at least 10 s each), unless FUZZ_SECONDS sets each target's.
# Called by scripts/test.sh; run it by hand to fuzz longer:
# `FUZZ_SECONDS=3600 scripts/fuzz.sh [target...]` (README.md, "Fuzzing").
#
# Works on the stable toolchain: cargo-fuzz's coverage flags are stable `-C` flags, and `-s none`
# leaves out the sanitizer (which needs nightly; the crates forbid `unsafe`, so there is little
# for it to find). Each target starts from its committed seeds (fuzz/seeds/<target>/) plus the
# inputs earlier runs kept (fuzz/corpus/<target>/, not committed); a crash leaves its input in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.2
target_dir="${FUZZ_TARGET_DIR:-$PWD/../target/fuzz}"

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# libFuzzer itself is C++, compiled by the libfuzzer-sys crate.
if ! command -v c++ >/dev/null; then
  sudo_if_needed=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo_if_needed apt-get update
  $sudo_if_needed apt-get install -y g++
fi

fuzz() { cargo fuzz "$1" -s none --target-dir "$target_dir" "${@:2}"; }

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

if [ -n "${FUZZ_SECONDS:-}" ]; then
  seconds="$FUZZ_SECONDS"
else
  seconds=$(( ${FUZZ_TOTAL_SECONDS:-80} / ${#targets[@]} ))
  [ "$seconds" -ge 10 ] || seconds=10
fi

cargo fmt --check
fuzz build
mkdir -p "$target_dir/logs"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  log="$target_dir/logs/$target.log"
  printf 'fuzzing %s for %s s... ' "$target" "$seconds"
  if fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -a -m1 '^Done [0-9]* runs' "$log" || echo "done"
  else
    echo "FAILED"
    tail -n 60 "$log"
    echo "fuzz target $target failed; full log: $log; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
