#!/usr/bin/env bash
# One-core forwarding benchmark: DPDK's testpmd (io, macswap) and l3fwd (LPM) against
# aegis-dataplane, all on the same traffic, in one run, compared as ratios.
#
# Every scenario: one worker core busy polling, port 0 = net_pcap replaying a pcap of 64-byte
# UDP packets from memory (rx_pcap=F,infinite_rx=1), port 1 = net_null dropping what is sent
# (no-rx=1). The rate is port 1's transmitted packets, read twice from DPDK telemetry
# (/var/run/dpdk/<prefix>/dpdk_telemetry.v2, /ethdev/stats) DURATION seconds apart.
#
# It mounts hugetlbfs in a private temp dir and reserves 2 MB pages for the run; the previous
# page count is restored and the mount removed on exit, also on failure or Ctrl-C. l3fwd is
# built from the dpdk-doc example sources in a temp copy (patched there only: no RX checksum
# offload request, which vdevs lack, and room for the large route table).
#
# Usage: sudo scripts/bench.sh [--duration S] [--hugepages N] [--routes N] [--packets N]
#                              [--flows N] [--seed N] [--rounds N] [--out DIR]
# With --rounds N every scenario runs N times, interleaved, and the table shows the median
# (and the spread), which tames this kind of machine's run-to-run noise.
# Needs: root, dpdk dpdk-dev (dpdk-testpmd) libdpdk-dev dpdk-doc, make, cc, python3, cargo.
set -euo pipefail

DURATION=10          # seconds measured per scenario
WARMUP=2             # seconds between first traffic and the first sample
HUGEPAGES=512        # 2 MB pages reserved for the run (each process uses -m $MEM_MB)
MEM_MB=512
ROUTES=100000
PACKETS=2048         # packets in the pcap (replayed forever); must fit the mempools
ROUNDS=1             # every scenario runs once per round; the table shows the median
FLOWS=1024
SEED=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$ROOT/bench-out"

die() { echo "bench.sh: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --hugepages) HUGEPAGES="$2"; shift 2 ;;
        --routes) ROUTES="$2"; shift 2 ;;
        --packets) PACKETS="$2"; shift 2 ;;
        --flows) FLOWS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --out) OUT_DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for v in DURATION HUGEPAGES ROUTES PACKETS FLOWS SEED ROUNDS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "--${v,,} must be a positive integer"
done

[[ "$(id -u)" -eq 0 ]] || die "run as root (hugepages, /var/run/dpdk)"
for tool in dpdk-testpmd pkg-config make cc python3 cargo mount umount; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs the packages; dpdk-testpmd is in dpdk-dev)"
done
pkg-config --exists libdpdk || die "libdpdk not found by pkg-config (apt-get install libdpdk-dev)"
DPDK_VERSION="$(pkg-config --modversion libdpdk)"
EXAMPLES="$(dpkg -L dpdk-doc 2>/dev/null | sed -n 's|/l3fwd/main.c$||p' | head -n1)"
[[ -n "$EXAMPLES" && -d "$EXAMPLES/l3fwd" ]] || EXAMPLES=/usr/share/dpdk/examples
[[ -f "$EXAMPLES/l3fwd/main.c" ]] || die "l3fwd sources not found (apt-get install dpdk-doc)"
NR_HUGE=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
[[ -w "$NR_HUGE" ]] || die "$NR_HUGE not writable: no 2 MB hugepage support"

WORK="$(mktemp -d /tmp/aegis-bench.XXXXXX)"
HUGE_DIR="$WORK/huge"
PREV_HUGE="$(cat "$NR_HUGE")"
MOUNTED=0
RUN_PID=""
PREFIXES=()
STAMP="$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"
LOG_DIR="$OUT_DIR/logs-$STAMP"
mkdir -p "$LOG_DIR"

stop_run() {
    [[ -n "$RUN_PID" ]] || return 0
    if kill -0 "$RUN_PID" 2>/dev/null; then
        kill -INT "$RUN_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$RUN_PID" 2>/dev/null || true
    fi
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=""
    rm -f "$HUGE_DIR"/* 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_run
    if [[ "$MOUNTED" -eq 1 ]]; then
        rm -f "$HUGE_DIR"/* 2>/dev/null || true
        umount "$HUGE_DIR" || echo "bench.sh: could not unmount $HUGE_DIR" >&2
    fi
    echo "$PREV_HUGE" > "$NR_HUGE" || echo "bench.sh: could not restore nr_hugepages=$PREV_HUGE" >&2
    for p in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$p"; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -----------------------------------------------------------------------------
cd "$ROOT"
say "building aegis-pktgen (release)"
cargo build --release -q -p aegis-pktgen || die "cannot build aegis-pktgen"
PKTGEN="$ROOT/target/release/aegis-pktgen"

AEGIS_STATUS="ok"
say "building aegis-dataplane (release)"
if cargo build --release -q -p aegis-dataplane --bin aegis-dataplane >"$LOG_DIR/aegis-build.log" 2>&1 \
    && [[ -x "$ROOT/target/release/aegis-dataplane" ]]; then
    AEGIS_BIN="$ROOT/target/release/aegis-dataplane"
else
    AEGIS_STATUS="not built (cargo build -p aegis-dataplane --bin aegis-dataplane failed; see $LOG_DIR/aegis-build.log)"
    say "aegis-dataplane: $AEGIS_STATUS"
fi
AEGISCTL=""
if cargo build --release -q -p aegis-controlplane --bin aegisctl >"$LOG_DIR/aegisctl-build.log" 2>&1 \
    && [[ -x "$ROOT/target/release/aegisctl" ]]; then
    AEGISCTL="$ROOT/target/release/aegisctl"
fi

say "building l3fwd from $EXAMPLES (temp copy)"
mkdir -p "$WORK/examples"
cp -r "$EXAMPLES/l3fwd" "$EXAMPLES/common" "$WORK/examples/"
L3SRC="$WORK/examples/l3fwd"
# vdevs have no RX checksum offload; l3fwd asks for it unconditionally.
sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0,/' "$L3SRC/main.c"
grep -q 'RTE_ETH_RX_OFFLOAD_CHECKSUM' "$L3SRC/main.c" && die "l3fwd patch (rx checksum offload) did not apply"
# l3fwd's LPM table holds 1024 rules; the benchmark table is larger.
sed -i 's/^#define IPV4_L3FWD_LPM_MAX_RULES[[:space:]]*1024$/#define IPV4_L3FWD_LPM_MAX_RULES (1 << 20)/' "$L3SRC/l3fwd_lpm.c"
grep -q 'IPV4_L3FWD_LPM_MAX_RULES (1 << 20)' "$L3SRC/l3fwd_lpm.c" || die "l3fwd patch (max rules) did not apply"
make -C "$L3SRC" shared -j2 >"$LOG_DIR/l3fwd-build.log" 2>&1 || die "l3fwd build failed; see $LOG_DIR/l3fwd-build.log"
L3FWD="$L3SRC/build/l3fwd"

# --- traffic and tables ---------------------------------------------------------------
ROUTES_FILE="$WORK/routes.txt"
RULES4="$WORK/rules_v4.cfg"
RULES6="$WORK/rules_v6.cfg"
PCAP="$WORK/flows.pcap"
DUT_MAC="02:00:00:00:00:01"
say "generating $ROUTES routes and a $PACKETS-packet pcap ($FLOWS flows)"
"$PKTGEN" routes --count "$ROUTES" --out "$ROUTES_FILE" --via 192.168.1.2 \
    --l3fwd-out "$RULES4" --l3fwd-port 1 --exclude 192.168.0.0/16 --seed "$SEED" >&2
echo "R2001:db8::/32 1" > "$RULES6"   # l3fwd wants an IPv6 rule file too
"$PKTGEN" pcap --out "$PCAP" --count "$PACKETS" --flows "$FLOWS" --dst-mac "$DUT_MAC" \
    --routes "$ROUTES_FILE" --seed "$SEED" >&2

# --- hugepages ------------------------------------------------------------------------
mkdir -p "$HUGE_DIR"
mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_DIR"
MOUNTED=1
echo $((PREV_HUGE + HUGEPAGES)) > "$NR_HUGE"
GOT=$(( $(cat "$NR_HUGE") - PREV_HUGE ))
[[ "$GOT" -ge "$HUGEPAGES" ]] || die "could reserve only $GOT of $HUGEPAGES hugepages"
say "reserved $HUGEPAGES x 2 MB hugepages in $HUGE_DIR"

# --- scenarios ------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
TELEMETRY="$ROOT/scripts/bench/telemetry.py"

eal_args() { # $1 = file prefix
    echo "--huge-dir $HUGE_DIR --huge-unlink -m $MEM_MB --no-pci --file-prefix $1" \
         "--vdev net_pcap0,rx_pcap=$PCAP,infinite_rx=1 --vdev net_null0,no-rx=1"
}

# run NAME PREFIX CMD... : start, wait for traffic, measure, stop; appends to $RESULTS.
run() {
    local name="$1" prefix="$2"; shift 2
    local log="$LOG_DIR/$prefix.log" rundir="/var/run/dpdk/$prefix"
    PREFIXES+=("$prefix")
    say "$name: $*"
    "$@" </dev/null >"$log" 2>&1 &
    RUN_PID=$!
    if ! python3 "$TELEMETRY" wait "$rundir" net_null0 --timeout 60 --pid "$RUN_PID" 2>>"$log"; then
        printf '%s\tfailed: no traffic (see %s)\t0\t0\t0\n' "$name" "$log" >> "$RESULTS"
        tail -n 5 "$log" >&2
        stop_run
        return 0
    fi
    sleep "$WARMUP"
    local m
    if m="$(python3 "$TELEMETRY" measure "$rundir" net_null0 "$DURATION" 2>>"$log")"; then
        read -r packets seconds mpps <<<"$m"
        printf '%s\tok\t%s\t%s\t%s\n' "$name" "$packets" "$seconds" "$mpps" >> "$RESULTS"
        say "$name: $mpps Mpps"
    else
        printf '%s\tfailed: telemetry (see %s)\t0\t0\t0\n' "$name" "$log" >> "$RESULTS"
    fi
    if [[ "$name" == aegis* && -n "$AEGISCTL" ]]; then
        "$AEGISCTL" dp show runtime --socket "$WORK/aegis.sock" >"$WORK/aegis-runtime.txt" 2>&1 \
            || echo "(aegisctl dp show runtime failed; see above)" >>"$WORK/aegis-runtime.txt"
    fi
    stop_run
}

P="aegis-bench-$$"

aegis_config() { # $1 = file prefix; prints the daemon's host.toml
    cat <<EOF
[eal]
args = ["--huge-dir", "$HUGE_DIR", "--huge-unlink", "-m", "$MEM_MB", "--no-pci", "--file-prefix=$1"]
main_lcore = 0
worker_lcores = [1]

[dataplane]
poll_mode = "busy"
burst = 32
mbufs = 8191
admin_socket = "$WORK/aegis.sock"
routes_file = "$ROUTES_FILE"

[[port]]
name = "eth0"
devargs = "net_pcap0,rx_pcap=$PCAP,infinite_rx=1"
addresses = ["192.168.0.1/24"]
mac = "$DUT_MAC"

[[port]]
name = "eth1"
devargs = "net_null0,no-rx=1"
addresses = ["192.168.1.1/24"]

[[neighbour]]
port = "eth1"
ip = "192.168.1.2"
mac = "02:00:00:00:00:02"
EOF
}

for round in $(seq "$ROUNDS"); do
    [[ "$ROUNDS" -eq 1 ]] || say "round $round of $ROUNDS"
    R="$P-r$round"
    # shellcheck disable=SC2046
    run "testpmd io" "$R-io" dpdk-testpmd -l 0,1 --main-lcore 0 $(eal_args "$R-io") -- \
        --forward-mode=io --nb-cores=1 --burst=32 --total-num-mbufs=16384 --stats-period=3600
    # shellcheck disable=SC2046
    run "testpmd macswap" "$R-macswap" dpdk-testpmd -l 0,1 --main-lcore 0 $(eal_args "$R-macswap") -- \
        --forward-mode=macswap --nb-cores=1 --burst=32 --total-num-mbufs=16384 --stats-period=3600
    # l3fwd opens one tx queue per lcore and net_pcap has one, so its only lcore (1) is both
    # main and worker; EAL control threads stay on the other CPU.
    # shellcheck disable=SC2046
    run "l3fwd lpm" "$R-l3fwd" "$L3FWD" -l 1 $(eal_args "$R-l3fwd") -- \
        -p 0x3 -P --config="(0,0,1)" --parse-ptype --lookup=lpm \
        --rule_ipv4="$RULES4" --rule_ipv6="$RULES6"
    if [[ "$AEGIS_STATUS" == ok ]]; then
        CFG="$WORK/aegis.toml"
        aegis_config "$R-aegis" > "$CFG"
        cp "$CFG" "$LOG_DIR/aegis.toml"
        run "aegis-dataplane" "$R-aegis" "$AEGIS_BIN" --config "$CFG"
    else
        printf '%s\t%s\t0\t0\t0\n' "aegis-dataplane" "$AEGIS_STATUS" >> "$RESULTS"
    fi
done

# --- report ---------------------------------------------------------------------------
CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
VIRT="$(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p' | head -n1)"
MACHINE="$WORK/machine.txt"
TRAFFIC="$WORK/traffic.txt"
{
    echo "Aegis forwarding benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "Machine: $CPU, $(nproc) CPUs${VIRT:+ ($VIRT guest)}, $(uname -r), DPDK $DPDK_VERSION, 2 MB hugepages"
} > "$MACHINE"
{
    echo "Traffic: net_pcap rx ($PACKETS x 64 B UDP, $FLOWS flows, infinite_rx) -> net_null tx;"
    echo "         $ROUTES random routes (/16../24); 1 worker core, busy polling;"
    echo "         ${DURATION} s per scenario, $ROUNDS round(s) (median shown)"
} > "$TRAFFIC"
REPORT="$OUT_DIR/bench-$STAMP.txt"
python3 "$ROOT/scripts/bench/report.py" "$RESULTS" "$MACHINE" "$TRAFFIC" > "$REPORT"
if [[ -s "$WORK/aegis-runtime.txt" ]]; then
    { echo; echo "aegisctl dp show runtime:"; cat "$WORK/aegis-runtime.txt"; } >> "$REPORT"
fi
cp "$REPORT" "$OUT_DIR/latest.txt"
echo
cat "$REPORT"
echo
say "written to $REPORT (logs in $LOG_DIR)"
