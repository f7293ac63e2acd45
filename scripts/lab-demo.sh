#!/usr/bin/env bash
# A five-minute tour of Aegis on one machine (as root, Debian 12):
#
#   sudo bash scripts/lab-demo.sh [--hold]
#
# Installs dependencies and builds (scripts/install-deps.sh), then `aegis-lab demo` builds
#
#   h1 10.0.1.2 --veth-- [10.0.1.1] r1: aegis-dataplane [10.0.2.1] --veth-- 10.0.2.2 h2
#
# in network namespaces, pings h1 -> h2 through the dataplane, traceroutes, and prints
# `aegisctl dp show runtime|errors|interfaces`. Then `aegis-lab cluster` builds a 3-node
# aegis-controlplane cluster on a bridge, drives it with aegisctl through the cluster IP,
# kills the leader with SIGKILL and shows the cluster IP move with no write lost. Last,
# `aegis-lab eastwest` builds three compute hosts (an aegis-dataplane each, following one
# aegis-controlplane) with VMs in two VPCs that use the same addresses, pings across hosts and
# subnets, shows that the VPCs do not see each other and captures their Geneve traffic (VNI
# 100 and 200) on the underlay. Everything is removed afterwards, also when the demo fails or
# is interrupted. --hold keeps each lab up until you press Enter.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-demo.sh: run as root (network namespaces)" >&2
    exit 1
fi

echo "==> Installing dependencies and building (first run takes a while)"
bash scripts/install-deps.sh >/tmp/aegis-install-deps.log 2>&1 || {
    tail -n 40 /tmp/aegis-install-deps.log >&2
    echo "lab-demo.sh: scripts/install-deps.sh failed; full log: /tmp/aegis-install-deps.log" >&2
    exit 1
}
echo "    done (log: /tmp/aegis-install-deps.log)"

# The demo tears its lab down itself; this catches what an interrupted demo leaves behind
# (cleanup only removes labs whose process has exited).
trap 'for p in demo democp demoew; do target/release/aegis-lab cleanup --prefix "$p" >/dev/null 2>&1 || true; done' EXIT

# The dataplane: h1 -- r1 (aegis-dataplane) -- h2.
target/release/aegis-lab demo "$@"
# The control cluster: 3 aegis-controlplane nodes, the cluster IP, a leader killed.
target/release/aegis-lab cluster "$@"
# East-west: VMs on three dataplanes fed by the control plane, two VPCs, Geneve.
target/release/aegis-lab eastwest "$@"
