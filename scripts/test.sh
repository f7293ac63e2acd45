#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run) and as a developer can run it locally (as root):
#
#   sudo bash scripts/test.sh
#
#   1. scripts/install-deps.sh: packages, Rust, cargo-nextest, and the release binaries
#      (aegis-dataplane, aegisctl, aegis-lab ...) that the topology tests start;
#   2. cargo fmt --check;  3. cargo clippy -D warnings;
#   4. cargo nextest run --workspace --release (release, so the tests use the binaries built
#      in step 1; each topology test builds its own lab, so they run in parallel).
#
# Steps 2-4 all run even if one fails, so one CI run reports every problem; the script exits
# non-zero if any step failed. A failing step 1 stops everything. Under CI=true nothing may
# skip: the topology tests fail instead of skipping when they lack root, `ip netns` or the
# binaries. AEGIS_TEST_TIMEOUT (seconds, default 4500) bounds step 4 so a hang cannot eat
# CI's 90 minutes silently.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

failed=()

step() { printf '\n==== %s\n' "$*"; }

# Runs a step; records its name if it fails instead of stopping.
check() {
    local name=$1
    shift
    step "$name"
    if ! "$@"; then
        echo "==== FAILED: $name"
        failed+=("$name")
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: must run as root (package install, network namespaces)" >&2
    exit 1
fi

step "install dependencies and build release binaries"
bash scripts/install-deps.sh

# The topology tests start these; a missing one is a failure here, not a skip later.
for bin in aegis-dataplane aegisctl aegis-lab; do
    if [ ! -x "target/release/$bin" ]; then
        echo "test.sh: target/release/$bin was not built" >&2
        failed+=("build target/release/$bin")
    fi
done

check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings

if [ -x target/release/aegis-lab ]; then
    step "remove leftovers of earlier, killed test runs"
    target/release/aegis-lab cleanup
fi

check "cargo nextest run --workspace --release" \
    timeout --signal=TERM --kill-after=60 "${AEGIS_TEST_TIMEOUT:-4500}" \
    cargo nextest run --workspace --release --no-fail-fast

if [ -x target/release/aegis-lab ]; then
    step "remove what a failed run may have left"
    target/release/aegis-lab cleanup || true
fi

if [ "${#failed[@]}" -ne 0 ]; then
    printf '\n==== test.sh: %d step(s) failed:\n' "${#failed[@]}"
    printf '  - %s\n' "${failed[@]}"
    exit 1
fi
printf '\n==== test.sh: all steps passed\n'
