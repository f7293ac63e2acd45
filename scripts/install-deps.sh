#!/usr/bin/env bash
# Installs everything Aegis needs on Debian 12 (bookworm) and builds the release binaries.
#
#   sudo bash scripts/install-deps.sh [--no-build] [--no-nextest]
#
# Idempotent: packages already installed are not touched (apt is skipped entirely when nothing
# is missing), the Rust toolchain is installed only when cargo is missing, cargo-nextest only
# when `cargo nextest` is missing. The same script is used by README's quick start,
# scripts/test.sh (CI), scripts/lab-demo.sh and the Dockerfile.
#
#   --no-build    only install; skip `cargo build --release --workspace --bins`
#   --no-nextest  do not install cargo-nextest (the Docker image does not run tests)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=1
nextest=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --no-nextest) nextest=0 ;;
        -h | --help)
            sed -n '2,14p' "$0"
            exit 0
            ;;
        *)
            echo "install-deps: unknown option $arg" >&2
            exit 2
            ;;
    esac
done

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'install-deps: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, and the lab needs network namespaces)"
[ -r /etc/debian_version ] || die "this script targets Debian 12 (bookworm)"

# What each package is for:
#   dpdk libdpdk-dev        DPDK 22.11 runtime (+ PMDs via Recommends) and headers/pkg-config
#   dpdk-dev                dpdk-testpmd, the I/O baseline of scripts/bench.sh
#   librte-net-af-packet23  net_af_packet PMD (labs, tests); librte-net-tap23: net_tap PMD
#   librte-mempool-ring23   default mempool handler
#   dpdk-doc                DPDK's example sources (l3fwd, the benchmark's reference router)
#   clang libclang-dev      bindgen for the dpdk-sys bindings
#   pkg-config build-essential  C toolchain and DPDK's cflags/libs
#   libpcap-dev             pcap files (pktgen, net_pcap)
#   iproute2 iputils-ping traceroute ethtool netcat-openbsd python3 procps util-linux
#                           the network-namespace lab and its probes (ip, ping, traceroute,
#                           ethtool -K, python3 raw sockets, sysctl/kill, setpriv)
#   tshark                  reads the dataplane's pcapng captures in tests
#   keepalived              the real VRRP peer of the gateway interop tests
#   nftables                loss on the gateways' sync path in the lab (bridge family), and
#                           NAT/filtering of the kernel gateways compared with Aegis's
#   conntrackd conntrack    the kernel gateways' state sync (FTFW) and their conntrack tables
#                           (tests/tests/kernel_gateway_failover.rs)
#   curl ca-certificates    fetching crates over HTTPS
#   linux-perf              perf, for the worker profiles of scripts/bench.sh --perf
PACKAGES=(
    dpdk dpdk-dev libdpdk-dev dpdk-doc librte-net-af-packet23 librte-net-tap23 librte-mempool-ring23
    clang libclang-dev pkg-config build-essential libpcap-dev
    iproute2 iputils-ping traceroute ethtool netcat-openbsd python3 procps util-linux
    tshark keepalived nftables conntrackd conntrack curl ca-certificates linux-perf
)

export DEBIAN_FRONTEND=noninteractive

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing_packages() {
    local p
    for p in "$@"; do installed "$p" || printf '%s\n' "$p"; done
}

apt_install() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    say "apt-get install ${missing[*]}"
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update
        APT_UPDATED=1
    fi
    apt-get install -y "${missing[@]}"
}

# tshark asks whether non-root users may capture (wireshark-common); answer "no" up front.
if ! installed tshark; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
fi

say "System packages"
apt_install "${PACKAGES[@]}"
echo "all system packages present"

# --- Rust ------------------------------------------------------------------------------------
# rustup's own toolchain in ~/.cargo/bin is used when present. Otherwise Rust comes from
# Debian: bookworm has no `rustup` package (it arrives in trixie), but it does ship a recent
# toolchain as rustc-web/cargo-web (bookworm-security carries 1.9x; plain bookworm 1.85),
# which needs no download from outside Debian's archive. Debian's `rustc`/`cargo` (1.63) are
# too old for this workspace.
export PATH="$HOME/.cargo/bin:$PATH"
say "Rust toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: installing Debian's rustc-web toolchain"
    apt_install rustc-web cargo-web rust-web-clippy rustfmt-web
fi
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        rustup component add clippy rustfmt
    else
        apt_install rust-web-clippy rustfmt-web
    fi
fi

required=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
have=$(rustc --version | awk '{print $2}')
if [ -n "$required" ] && [ "$(printf '%s\n%s\n' "$required" "$have" | sort -V | head -n1)" != "$required" ]; then
    die "rustc $have is older than the workspace's rust-version $required"
fi
echo "$(cargo --version), $(rustc --version)"

if [ "$nextest" -eq 1 ]; then
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "cargo install cargo-nextest --locked"
        cargo install cargo-nextest --locked
    fi
    cargo nextest --version | head -n1
fi

# --- Build -----------------------------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    say "cargo build --release --workspace --bins"
    cargo build --release --workspace --bins
    echo "binaries in $(pwd)/target/release"
fi
