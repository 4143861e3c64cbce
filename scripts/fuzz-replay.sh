#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, a workspace of its own, from its lock file) without
# libFuzzer's coverage instrumentation, and runs each once through its corpus: every input
# must pass. `cargo fuzz` builds the instrumented targets for fuzzing proper (docs/fuzzing.md).
# CARGO_TARGET_DIR, when set, is shared with the main workspace's release build.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$(pwd)/fuzz/target}"
cargo build --release --locked --manifest-path fuzz/Cargo.toml --bins --quiet
artifacts="$(mktemp -d)"
trap 'rm -rf "$artifacts"' EXIT
for corpus in fuzz/corpus/*/; do
  name="$(basename "$corpus")"
  out="$("$target/release/$name" "$corpus" -runs=0 -artifact_prefix="$artifacts/" 2>&1)" || {
    echo "fuzz target $name failed on its corpus:" >&2
    echo "$out" | tail -20 >&2
    exit 1
  }
  echo "fuzz target $name: $(echo "$out" | grep -o 'Done [0-9]* runs' | tail -1)"
done
