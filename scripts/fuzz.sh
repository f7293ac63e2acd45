#!/usr/bin/env bash
# Fuzzes the dataplane with libFuzzer for SECONDS (default 60) per target: `pipeline` (the
# router, fuzz/fuzz_targets/pipeline.rs), `overlay` (VM ports and Geneve, fuzz/fuzz_targets/overlay.rs)
# `vrrp` (the VRRP frame parser, fuzz/fuzz_targets/vrrp.rs), `keepalived_conf` (the
# keepalived.conf importer) and `sessionsync` (the session-sync receiver);
# name targets after SECONDS to run only those. Uses cargo-fuzz when installed; otherwise builds the target with
# the same coverage flags on the stable toolchain (RUSTC_BOOTSTRAP enables -Z flags there).
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(pipeline overlay vrrp keepalived_conf sessionsync)
if cargo fuzz --version >/dev/null 2>&1; then
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$seconds"
  done
  exit
fi
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the coverage flags off build scripts and proc macros.
target=$(rustc -vV | sed -n "s/^host: //p")
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cargo build --release --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --target "$target" --bin "$t"
  fuzz/target/"$target"/release/"$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t"
done
