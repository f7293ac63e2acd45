#!/usr/bin/env bash
# Control-plane measurements: write throughput and latency of one node (loopback) and of the
# 3-node cluster in network namespaces (through the cluster IP), and leader failover times
# over repeated kill -9s (process death and host death). Builds the release binaries and
# runs `aegis-cp-bench` (tests/src/bin/aegis-cp-bench.rs), which prints a Markdown report;
# docs/controlplane.md records a run.
#
# Usage: sudo scripts/cp-bench.sh [--seconds S] [--writers 1,16] [--kills N]
#                                 [--skip-single] [--skip-cluster] [--skip-failover]
#        (the arguments go to aegis-cp-bench; defaults: 5 s per load run, 1 and 16 writers,
#         5 kills of each kind)
# Env: NO_BUILD=1 skips the build (uses target/release or $AEGIS_BIN_DIR as is).
# Needs: root (network namespaces), iproute2, ping (iputils), stdbuf, setpriv, cargo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "cp-bench.sh: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
for t in ip ping stdbuf setpriv; do
    command -v "$t" >/dev/null || die "missing $t (run scripts/install-deps.sh)"
done

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "==> cargo build --release -p aegis-controlplane -p aegis-lab --bins" >&2
    cargo build --release -p aegis-controlplane -p aegis-lab --bins
fi

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/aegis-cp-bench"
[[ -x "$BIN" ]] || die "$BIN not built"

echo "<!-- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'): scripts/cp-bench.sh $* -->"
exec "$BIN" "$@"
