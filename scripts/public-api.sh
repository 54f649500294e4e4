#!/usr/bin/env bash
# The public API of the library crates, listed in api/<crate>.txt so that every change to the
# surface is a visible diff in review.
#
#   scripts/public-api.sh           regenerate api/*.txt (commit the result)
#   scripts/public-api.sh --check   fail, with a unified diff, when a listing is out of date
#
# The listing is cargo-public-api's (pinned; installed with `cargo install --locked` when
# missing) over rustdoc JSON that this script builds with the active stable toolchain:
# rustdoc's JSON output is unstable, so RUSTC_BOOTSTRAP=1 unlocks it. cargo-public-api would
# otherwise switch to a nightly toolchain of its own choosing, which CI does not have. Its
# version must read the JSON format that our rustc writes: 0.52.0 is built on rustdoc-types
# 0.57, format version 57, which is what rustc 1.95 writes; the script refuses another format.
#
# Fixed for reproducible listings: every feature of each crate (--all-features, so the optional
# serde, defmt and std surfaces are listed too), the host target, and the tool's own
# sorted order. Blanket impls (`impl<T> From<T> for T`, ...) and auto-trait impls (Send, Sync,
# Unpin, Freeze, ...: eight lines per type, some of them compiler internals that change between
# rustc releases) are left out; where Send or Sync matters a test asserts it.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL_VERSION=0.52.0
JSON_FORMAT=57
CRATES=(rustkernel-core rustkernel-tokio rustkernel-embassy)

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

installed=$(cargo public-api --version 2>/dev/null | awk '{print $2}' || true)
if [ "$installed" != "$TOOL_VERSION" ]; then
  cargo install --locked cargo-public-api --version "$TOOL_VERSION"
fi

# Its own target directory: RUSTC_BOOTSTRAP changes what some build scripts detect, and
# sharing the main one would rebuild those crates every time it flips.
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/public-api

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for crate in "${CRATES[@]}"; do
  lib=${crate//-/_}
  RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet -p "$crate" --lib --all-features --target-dir "$target" \
    -- -Z unstable-options --output-format json
  json="$target/doc/$lib.json"
  format=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["format_version"])' "$json")
  if [ "$format" != "$JSON_FORMAT" ]; then
    echo "public-api: rustdoc wrote JSON format $format; cargo-public-api $TOOL_VERSION reads" \
      "$JSON_FORMAT. Pick the cargo-public-api release for this rustc and update the pins." >&2
    exit 1
  fi
  cargo public-api --rustdoc-json "$json" --omit blanket-impls,auto-trait-impls --color never > "$out/$crate.txt"
  if $check; then
    if ! diff -u --label "api/$crate.txt (committed)" --label "$crate (the code now)" \
      "api/$crate.txt" "$out/$crate.txt" > "$out/$crate.diff"; then
      echo "public-api: the public API of $crate differs from api/$crate.txt:" >&2
      cat "$out/$crate.diff" >&2
      status=1
    fi
  else
    mkdir -p api
    cp "$out/$crate.txt" "api/$crate.txt"
  fi
done

if [ "$status" -ne 0 ]; then
  echo "public-api: if the change is intended, run scripts/public-api.sh and commit api/." >&2
fi
exit "$status"
