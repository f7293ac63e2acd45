#!/usr/bin/env bash
# Fuzzes the forwarding pipeline (fuzz/fuzz_targets/pipeline.rs) with libFuzzer for
# SECONDS (default 60). Uses cargo-fuzz when installed; otherwise builds the target with
# the same coverage flags on the stable toolchain (RUSTC_BOOTSTRAP enables -Z flags there).
# A crash leaves its input in fuzz/artifacts/pipeline/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
mkdir -p fuzz/corpus/pipeline fuzz/artifacts/pipeline
if cargo fuzz --version >/dev/null 2>&1; then
  RUSTC_BOOTSTRAP=1 cargo fuzz run pipeline -- -max_total_time="$seconds"
  exit
fi
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the coverage flags off build scripts and proc macros.
target=$(rustc -vV | sed -n "s/^host: //p")
cargo build --release --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --target "$target" --bin pipeline
fuzz/target/"$target"/release/pipeline -max_total_time="$seconds" -rss_limit_mb=2048 \
  -artifact_prefix=fuzz/artifacts/pipeline/ fuzz/corpus/pipeline
