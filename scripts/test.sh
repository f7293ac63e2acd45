#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run) and as a developer can run it locally (as root):
#
#   sudo bash scripts/test.sh
#
#   1. scripts/install-deps.sh: packages, Rust, cargo-nextest, and the release binaries
#      (aegis-dataplane, aegisctl, aegis-lab ...) that the topology tests start;
#   2. cargo fmt --check;  3. cargo clippy -D warnings;
#   4. cargo nextest run --workspace --release (release, so the tests use the binaries built
#      in step 1 and each topology test gets its own lab and runs in parallel).
#
# Exits non-zero on the first failing step. Under CI=true nothing may skip: the topology tests
# fail instead of skipping when they lack root, `ip netns` or the binaries.
# AEGIS_TEST_TIMEOUT (seconds, default 4500) bounds the test step so a hang cannot eat CI's
# 90 minutes silently.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==== %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: must run as root (package install, network namespaces)" >&2
    exit 1
fi

step "install dependencies and build release binaries"
bash scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# Topology tests run the release binaries; make sure they are there even if install-deps was
# told to skip the build by a caller's environment in the future.
for bin in aegis-dataplane aegisctl aegis-lab; do
    if [ ! -x "target/release/$bin" ]; then
        echo "test.sh: target/release/$bin is missing after the build" >&2
        exit 1
    fi
done

step "remove leftovers of earlier, killed test runs"
target/release/aegis-lab cleanup

step "cargo nextest run --workspace --release"
status=0
timeout --signal=TERM --kill-after=60 "${AEGIS_TEST_TIMEOUT:-4500}" \
    cargo nextest run --workspace --release --no-fail-fast || status=$?

step "remove what a failed run may have left"
target/release/aegis-lab cleanup || true
exit "$status"
