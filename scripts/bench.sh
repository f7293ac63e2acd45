#!/usr/bin/env bash
# One-core forwarding benchmark: DPDK's testpmd (io, macswap) and l3fwd (LPM) against
# aegis-dataplane, all on the same traffic, in one run, compared as ratios.
#
# Every scenario: one worker core busy polling, port 0 = net_pcap replaying a pcap of 64-byte
# UDP packets from memory (rx_pcap=F,infinite_rx=1), port 1 = net_null dropping what is sent
# (no-rx=1). The rate is port 1's transmitted packets, read twice from DPDK telemetry
# (/var/run/dpdk/<prefix>/dpdk_telemetry.v2, /ethdev/stats) DURATION seconds apart.
#
# East-west (the overlay, docs/benchmarks.md#east-west), same ports, aegis-dataplane as host a
# of a two-host VPC configured from a control-plane cache file (--controlplane-cache; the
# control plane address given is closed, so nothing else changes it), EW_FLOWS UDP flows, each
# an established connection after the first replay (scripts/bench/ew_pcap.py writes the pcaps
# and the cache):
# - "aegis east-west out": port 0 = VM port vm1 (b1), 64-byte frames to the router for b2 on
#   host b -> port security, VPC routing, security group, Geneve -> port 1 = underlay ul0;
# - "aegis east-west in": port 0 = ul0, Geneve from host b for b1 -> decap, security group
#   (ingress) -> port 1 = vm1;
# - "testpmd io ew-out": testpmd io on the east-west out pcap (EW_FLOWS packets replayed from
#   as many mbufs): the I/O ceiling of that pcap.
# - "l3fwd lpm ew-out": l3fwd (LPM) routing that same pcap (its routes plus 10.1.1.0/24 -> port 1,
#   its mbuf pool grown to hold the pcap): the reference router on the east-west input, the
#   base of the report's "vs l3fwd same pcap" column. AEGIS_BIN=PATH measures that binary
#   instead of building aegis-dataplane.
# NAT (docs/benchmarks.md#nat), same ports, one worker, every packet a session hit after the
# first replay (the sessions are created then):
# - "aegis nat (routed)": host.toml [nat], the routing scenario's pcap, routes and next hop,
#   with source NAT (endpoint-dependent) of all its sources (198.18.0.0/15) to 192.168.1.10,
#   an address of the outside port 1;
# - "aegis nat (overlay gateway)": a gateway host of the control plane's gateway group,
#   configured from a cache file like the east-west scenarios (scripts/bench/ew_pcap.py
#   --gw-*): port 0 = underlay, Geneve from compute host a (VNI 100, inner destination MAC
#   02:ae:00:00:00:02) -> decap, source NAT of VPC blue to 203.0.113.10 -> port 1 = external.
# Both check that packets are translated: a capture of port 1's transmitted packets (aegisctl
# dp capture) must show the NAT address as every source (the report's note says "translated
# N/N"). --only nat runs only testpmd, l3fwd, aegis routing and the NAT scenarios;
# --only eastwest the same with the east-west scenarios; --only routing just the first four.
# --perf records a profile of the worker core (CPU 1) during each aegis and l3fwd measurement
# (`perf record -C 1`, cpu-clock) into the logs folder as PREFIX.perf.data, and writes the
# top symbols beside it (PREFIX.perf.txt); read one with `perf annotate -i FILE`.
# Tracing off (docs/benchmarks.md#tracing-off): --untraced also builds aegis-dataplane with
# the `untraced` feature (its trace hooks compile to nothing: the build without probes) and
# runs it beside the normal build, interleaved in every round, as "aegis-dataplane (untraced
# build)" and "aegis east-west out|in (untraced build)"; --only trace runs just testpmd,
# l3fwd, and those scenarios with their normal-build twins.
# --compare BIN runs another aegis-dataplane binary (e.g. a build of an earlier commit) the
# same way beside the normal build, in every aegis scenario (routing, NAT, east-west) of
# every round, as "... (compare build)": an A/B of two builds in one run, interleaved, so
# the machine's drift over minutes hits both alike.
# --compare-burst N runs the compare side with dataplane.burst = N (the normal build's binary
# when no --compare BIN is given): an A/B of two burst sizes, labelled "(burst N)".
# After each aegis scenario, `aegisctl dp show runtime` / `show errors` are saved in the log
# folder and the drops counted are shown under the table.
#
# It mounts hugetlbfs in a private temp dir and reserves 2 MB pages for the run; the previous
# page count is restored and the mount removed on exit, also on failure or Ctrl-C. l3fwd is
# built from the dpdk-doc example sources in a temp copy (patched there only: no RX checksum
# offload request, which vdevs lack, and room for the large route table).
#
# Then, with aegis-pktgen as the traffic source and sink (docs/pktgen.md):
# - latency: aegis-pktgen -> aegis-dataplane (routing) -> aegis-pktgen over two memif pairs;
#   first at line rate to find the maximum, then at 50 % of it for the latency figures;
# - restart gap: the same path over two veth pairs (net_af_packet) at --gap-rate, with
#   aegis-dataplane stopped (SIGINT) and started again mid-run; the longest gap in the
#   received traffic is the outage.
#
# Usage: sudo scripts/bench.sh [--duration S] [--hugepages N] [--routes N] [--packets N]
#                              [--flows N] [--seed N] [--rounds N] [--out DIR]
#                              [--gap-rate PPS] [--ew-flows N] [--no-eastwest] [--no-pktgen]
#                              [--no-nat] [--only routing|nat|eastwest|trace] [--nat-connections N]
#                              [--untraced | --compare BIN] [--compare-burst N] [--perf]
# Environment: BURST=N sets every aegis run's dataplane.burst (default 128, host.toml's default).
# With --rounds N every scenario runs N times, interleaved, and the table shows the median
# (and the spread), which tames this kind of machine's run-to-run noise. --no-pktgen skips
# the latency and restart-gap scenarios, --no-eastwest the east-west ones, --no-nat the NAT
# ones; --only nat is --no-eastwest --no-pktgen (testpmd, l3fwd, aegis routing and NAT).
# --nat-connections N sets the NAT scenarios' dataplane.connections (default 262144: the NAT
# table and the connection table per worker).
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
GAP_RATE=100000      # packets/s during the restart-gap run
PKTGEN_SCENARIOS=1
EW_FLOWS=100000      # east-west: flows = packets in each pcap = established connections
EW_SCENARIOS=1
NAT_SCENARIOS=1
UNTRACED=0
COMPARE_BIN=""
COMPARE_BURST=""     # --compare-burst: dataplane.burst of the compare runs
PERF=0
BURST="${BURST:-128}"   # dataplane.burst of every aegis run (128 = host.toml's default)
NAT_CONNECTIONS=262144   # NAT scenarios: dataplane.connections (NAT sessions per worker)
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
        --gap-rate) GAP_RATE="$2"; shift 2 ;;
        --no-pktgen) PKTGEN_SCENARIOS=0; shift ;;
        --ew-flows) EW_FLOWS="$2"; shift 2 ;;
        --no-eastwest) EW_SCENARIOS=0; shift ;;
        --no-nat) NAT_SCENARIOS=0; shift ;;
        --nat-connections) NAT_CONNECTIONS="$2"; shift 2 ;;
        --untraced) UNTRACED=1; shift ;;
        --compare) COMPARE_BIN="$2"; shift 2 ;;
        --compare-burst) COMPARE_BURST="$2"; shift 2 ;;
        --perf) PERF=1; shift ;;
        --only)
            case "${2:-}" in
                nat) EW_SCENARIOS=0; PKTGEN_SCENARIOS=0; NAT_SCENARIOS=1 ;;
                routing) EW_SCENARIOS=0; PKTGEN_SCENARIOS=0; NAT_SCENARIOS=0 ;;
                eastwest) EW_SCENARIOS=1; PKTGEN_SCENARIOS=0; NAT_SCENARIOS=0 ;;
                trace) EW_SCENARIOS=1; PKTGEN_SCENARIOS=0; NAT_SCENARIOS=0; UNTRACED=1 ;;
                *) die "--only takes routing (testpmd, l3fwd, aegis routing), nat or eastwest (those plus the NAT or east-west scenarios) or trace (normal and untraced builds)" ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for v in DURATION HUGEPAGES ROUTES PACKETS FLOWS SEED ROUNDS GAP_RATE EW_FLOWS NAT_CONNECTIONS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "--${v,,} must be a positive integer"
done
# net_pcap with infinite_rx keeps every packet of the pcap in an mbuf of the port's pool for
# the whole run, so the east-west pools hold EW_FLOWS mbufs more than the usual working set
# (~2.5 KB each with the 2 KB data room), and the EAL memory grows with them.
EW_MBUFS=$(( EW_FLOWS + 16384 ))
EW_MEM_MB=$(( EW_MBUFS * 2560 / 1048576 + 160 ))
(( EW_MEM_MB > MEM_MB )) || EW_MEM_MB=$MEM_MB
EW_CONNECTIONS=${EW_CONNECTIONS:-$(( EW_FLOWS * 2 > 262144 ? EW_FLOWS * 2 : 262144 ))}
if [[ "$EW_SCENARIOS" -eq 1 ]] && (( EW_MEM_MB > HUGEPAGES * 2 )); then
    die "--ew-flows $EW_FLOWS needs $EW_MEM_MB MB of hugepages; give --hugepages $(( (EW_MEM_MB + 1) / 2 ))"
fi

[[ "$(id -u)" -eq 0 ]] || die "run as root (hugepages, /var/run/dpdk)"
for tool in dpdk-testpmd pkg-config make cc python3 cargo mount umount; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs the packages; dpdk-testpmd is in dpdk-dev)"
done
[[ "$PERF" == 0 ]] || command -v perf >/dev/null \
    || die "--perf needs perf (scripts/install-deps.sh installs linux-perf)"
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
PG_PID=""
PREFIXES=()
VETHS=()
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
    [[ -z "$PG_PID" ]] || kill -INT "$PG_PID" 2>/dev/null || true
    stop_run
    if [[ "$MOUNTED" -eq 1 ]]; then
        rm -f "$HUGE_DIR"/* 2>/dev/null || true
        umount "$HUGE_DIR" || echo "bench.sh: could not unmount $HUGE_DIR" >&2
    fi
    echo "$PREV_HUGE" > "$NR_HUGE" || echo "bench.sh: could not restore nr_hugepages=$PREV_HUGE" >&2
    for p in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$p"; done
    for v in "${VETHS[@]}"; do ip link del "$v" 2>/dev/null || true; done
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
if [[ -n "${AEGIS_BIN:-}" ]]; then
    # A given binary (e.g. an earlier build, to compare two builds in one run).
    [[ -x "$AEGIS_BIN" ]] || die "AEGIS_BIN=$AEGIS_BIN is not an executable"
    say "aegis-dataplane: using AEGIS_BIN=$AEGIS_BIN"
elif say "building aegis-dataplane (release)" && cargo build --release -q -p aegis-dataplane --bin aegis-dataplane >"$LOG_DIR/aegis-build.log" 2>&1 \
    && [[ -x "$ROOT/target/release/aegis-dataplane" ]]; then
    AEGIS_BIN="$ROOT/target/release/aegis-dataplane"
else
    AEGIS_STATUS="not built (cargo build -p aegis-dataplane --bin aegis-dataplane failed; see $LOG_DIR/aegis-build.log)"
    say "aegis-dataplane: $AEGIS_STATUS"
fi
# The second build run beside the normal one (--untraced or --compare), and its label.
SECOND_BIN=""
SECOND_TAG=""
if [[ -n "$COMPARE_BURST" ]]; then
    [[ "$COMPARE_BURST" =~ ^[1-9][0-9]*$ ]] || die "--compare-burst takes a positive number, not $COMPARE_BURST"
    [[ "$UNTRACED" -eq 0 ]] || die "--compare-burst and --untraced (or --only trace) exclude each other"
    [[ "$AEGIS_STATUS" == ok ]] || die "--compare-burst: aegis-dataplane: $AEGIS_STATUS"
    [[ -n "$COMPARE_BIN" ]] || COMPARE_BIN="$AEGIS_BIN"
fi
if [[ -n "$COMPARE_BIN" ]]; then
    [[ "$UNTRACED" -eq 0 ]] || die "--compare and --untraced (or --only trace) exclude each other"
    [[ -x "$COMPARE_BIN" ]] || die "--compare $COMPARE_BIN is not an executable"
    SECOND_BIN="$COMPARE_BIN"
    if [[ "$COMPARE_BIN" == "$AEGIS_BIN" && -n "$COMPARE_BURST" ]]; then
        SECOND_TAG="burst $COMPARE_BURST"
    elif [[ -n "$COMPARE_BURST" ]]; then
        SECOND_TAG="compare build, burst $COMPARE_BURST"
    else
        SECOND_TAG="compare build"
    fi
    say "compare side: $COMPARE_BIN${COMPARE_BURST:+ with bursts of $COMPARE_BURST}"
elif [[ "$UNTRACED" -eq 1 && "$AEGIS_STATUS" == ok ]]; then
    # Built into its own target folder: the normal build's artifacts stay as they are.
    say "building aegis-dataplane --features untraced (release, target/untraced)"
    if CARGO_TARGET_DIR="$ROOT/target/untraced" cargo build --release -q -p aegis-dataplane \
        --bin aegis-dataplane --features untraced >"$LOG_DIR/aegis-untraced-build.log" 2>&1; then
        SECOND_BIN="$ROOT/target/untraced/release/aegis-dataplane"
        SECOND_TAG="untraced build"
    else
        die "cannot build aegis-dataplane --features untraced (see $LOG_DIR/aegis-untraced-build.log)"
    fi
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
# l3fwd's mbuf pool has at least 8192 mbufs; net_pcap's infinite_rx keeps the whole east-west
# pcap (EW_FLOWS packets) in mbufs of that pool, so the minimum grows to the east-west pools'
# size (the routing scenario's pcap uses 2048 of them either way).
sed -i "s/^\t(unsigned)8192)$/\t(unsigned)$EW_MBUFS)/" "$L3SRC/main.c"
grep -q "(unsigned)$EW_MBUFS)" "$L3SRC/main.c" || die "l3fwd patch (mbuf pool size) did not apply"
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
EW_OUT_PCAP="$WORK/ew-out.pcap"
EW_IN_PCAP="$WORK/ew-in.pcap"
EW_CACHE="$WORK/ew-cache.json"
EW_UL_MAC="02:0a:00:00:00:01"     # host a's underlay port (ul0)
EW_PEER_MAC="02:0b:00:00:00:01"   # host b's underlay port: a static neighbour, no ARP
if [[ "$EW_SCENARIOS" -eq 1 ]]; then
    say "generating the east-west pcaps ($EW_FLOWS flows each) and host a's control-plane cache"
    python3 "$ROOT/scripts/bench/ew_pcap.py" --flows "$EW_FLOWS" --out-pcap "$EW_OUT_PCAP" \
        --in-pcap "$EW_IN_PCAP" --cache "$EW_CACHE" --ul-mac "$EW_UL_MAC" \
        || die "scripts/bench/ew_pcap.py failed"
    cp "$EW_CACHE" "$LOG_DIR/ew-cache.json"
    # l3fwd on the east-west pcap: its routes plus the inner destination subnet.
    EW_RULES4="$WORK/ew_rules_v4.cfg"
    { cat "$RULES4"; echo "R10.1.1.0/24 1"; } > "$EW_RULES4"
fi

GW_UL_MAC="02:0c:00:00:00:01"   # gateway host g's underlay port (ul0)
GW_EXT_NEXT_HOP_MAC="02:0d:00:00:00:01"   # the external network's router 203.0.113.1
GW_PCAP="$WORK/nat-gw.pcap"
GW_CACHE="$WORK/nat-gw-cache.json"
if [[ "$NAT_SCENARIOS" -eq 1 ]]; then
    say "generating the overlay gateway's pcap ($PACKETS Geneve packets, $FLOWS flows) and host g's cache"
    python3 "$ROOT/scripts/bench/ew_pcap.py" --gw-flows "$FLOWS" --gw-packets "$PACKETS" \
        --gw-pcap "$GW_PCAP" --gw-cache "$GW_CACHE" --gw-mac "$GW_UL_MAC" \
        || die "scripts/bench/ew_pcap.py --gw-* failed"
    cp "$GW_CACHE" "$LOG_DIR/nat-gw-cache.json"
fi

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

eal_args() { # $1 = file prefix [$2 = pcap, $3 = memory MB]
    echo "--huge-dir $HUGE_DIR --huge-unlink -m ${3:-$MEM_MB} --no-pci --file-prefix $1" \
         "--vdev net_pcap0,rx_pcap=${2:-$PCAP},infinite_rx=1 --vdev net_null0,no-rx=1"
}
DP_SOCK="$WORK/aegis.sock"   # admin socket of the aegis-dataplane scenarios
DP_COUNTERS="$ROOT/scripts/bench/dp_counters.py"

# run NAME PREFIX CMD... : start, wait for traffic, measure, stop; appends to $RESULTS. For
# aegis scenarios the dataplane's runtime and drop counters (admin socket $DP_SOCK) are saved
# as $LOG_DIR/PREFIX-runtime.txt (and -runtime.json, -errors.json) and summarised in a sixth
# column (drops, connections).
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
    local m line perf_pid=""
    if [[ "${PERF:-0}" == 1 && ( "$name" == aegis* || "$name" == l3fwd* ) ]]; then
        perf record -q -C 1 -e cpu-clock -o "$LOG_DIR/$prefix.perf.data" -- sleep "$DURATION" \
            >>"$log" 2>&1 &
        perf_pid=$!
    fi
    if m="$(python3 "$TELEMETRY" measure "$rundir" net_null0 "$DURATION" 2>>"$log")"; then
        read -r packets seconds mpps <<<"$m"
        line="$(printf '%s\tok\t%s\t%s\t%s' "$name" "$packets" "$seconds" "$mpps")"
        say "$name: $mpps Mpps"
    else
        line="$(printf '%s\tfailed: telemetry (see %s)\t0\t0\t0' "$name" "$log")"
    fi
    if [[ -n "$perf_pid" ]]; then
        wait "$perf_pid" || true
        perf report -q -i "$LOG_DIR/$prefix.perf.data" --sort sym --stdio 2>/dev/null \
            | head -n 40 >"$LOG_DIR/$prefix.perf.txt" || true
        say "$name: profile in $LOG_DIR/$prefix.perf.data (top symbols: $prefix.perf.txt)"
    fi
    if [[ "$name" == aegis* && -n "$AEGISCTL" ]]; then
        local rt="$LOG_DIR/$prefix-runtime.txt" note
        "$AEGISCTL" dp show runtime --socket "$DP_SOCK" >"$rt" 2>&1 \
            || echo "(aegisctl dp show runtime failed; see above)" >>"$rt"
        "$AEGISCTL" dp show errors --socket "$DP_SOCK" >>"$rt" 2>&1 || true
        "$AEGISCTL" dp show runtime -o json --socket "$DP_SOCK" >"$LOG_DIR/$prefix-runtime.json" 2>&1 || true
        "$AEGISCTL" dp show errors -o json --socket "$DP_SOCK" >"$LOG_DIR/$prefix-errors.json" 2>&1 || true
        note="$(python3 "$DP_COUNTERS" "$LOG_DIR/$prefix-errors.json" "$LOG_DIR/$prefix-runtime.json" 2>&1 | head -n1)"
        if [[ -n "${NAT_CHECK:-}" ]]; then
            # NAT_CHECK="PORT ADDRESS": what leaves PORT must come from ADDRESS (translated).
            local cap="$LOG_DIR/$prefix-capture.json" nat
            timeout 20 "$AEGISCTL" dp capture --socket "$DP_SOCK" --port "${NAT_CHECK% *}" \
                --direction tx -c 16 -o json >"$cap" 2>>"$log" || true
            if nat="$(python3 "$DP_COUNTERS" --translated "${NAT_CHECK#* }" "$cap" 2>&1)"; then
                note+=", $nat"
            else
                note+=", $nat"
                line="$(printf '%s\tfailed: not translated (%s; see %s)\t0\t0\t0' "$name" "$nat" "$cap")"
            fi
        fi
        line+="$(printf '\t%s' "$note")"
        cp "$rt" "$WORK/runtime-$name.txt"   # the last round's goes into the report
        say "$name: $note"
    fi
    echo "$line" >> "$RESULTS"
    stop_run
}

P="aegis-bench-$$"

# The pieces of a benchmark host.toml.
toml_head() { # PREFIX MEM_MB MBUFS SOCKET [CONNECTIONS]: [eal] (one busy worker, lcore 1) and [dataplane]
    printf '[eal]\nargs = ["--huge-dir", "%s", "--huge-unlink", "-m", "%s", "--no-pci", "--file-prefix=%s"]\n' \
        "$HUGE_DIR" "$2" "$1"
    # The compare side's runs (prefix ending in -u) take --compare-burst when given.
    local burst="$BURST"
    [[ "$1" != *-u || -z "$COMPARE_BURST" ]] || burst="$COMPARE_BURST"
    printf 'main_lcore = 0\nworker_lcores = [1]\n\n[dataplane]\npoll_mode = "busy"\nburst = %s\n' "$burst"
    printf 'mbufs = %s\n' "$3"
    [[ -z "${5:-}" ]] || printf 'connections = %s\n' "$5"
    printf 'admin_socket = "%s"\n' "$4"
}
toml_port() { # NAME DEVARGS [ADDRESSES [MAC]]: ADDRESSES as TOML list items ("a/24", "b/32")
    printf '\n[[port]]\nname = "%s"\ndevargs = "%s"\n' "$1" "$2"
    [[ -z "${3:-}" ]] || printf 'addresses = [%s]\n' "$3"
    [[ -z "${4:-}" ]] || printf 'mac = "%s"\n' "$4"
}
toml_route() { # PREFIX VIA
    printf '\n[[route]]\nprefix = "%s"\nvia = "%s"\n' "$1" "$2"
}
toml_neighbour() { # PORT IP MAC: a static neighbour (nothing waits for ARP)
    printf '\n[[neighbour]]\nport = "%s"\nip = "%s"\nmac = "%s"\n' "$1" "$2" "$3"
}

aegis_config() { # $1 = file prefix [$2 = another address of eth1, $3 = connections]: the routing host.toml
    toml_head "$1" "$MEM_MB" 8191 "$DP_SOCK" "${3:-}"
    printf 'routes_file = "%s"\n' "$ROUTES_FILE"
    toml_port eth0 "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" '"192.168.0.1/24"' "$DUT_MAC"
    toml_port eth1 "net_null0,no-rx=1" "\"192.168.1.1/24\"${2:+, \"$2\"}"
    toml_neighbour eth1 192.168.1.2 02:00:00:00:00:02
}

NAT_ADDRESS="192.168.1.10"          # the routed NAT scenario's outside address (on eth1)

nat_config() { # $1 = file prefix: the routing scenario's host.toml plus [nat] (source NAT of
    # the pcap's sources, 198.18.0.0/15, to NAT_ADDRESS, a second address of the outside port)
    aegis_config "$1" "$NAT_ADDRESS/32" "$NAT_CONNECTIONS"
    printf '\n[nat]\noutside_port = "eth1"\n\n[[nat.snat]]\nsource = "198.18.0.0/15"\n'
    printf 'address = "%s"\nendpoint_dependent = true\n' "$NAT_ADDRESS"
}

gw_config() { # $1 = file prefix: gateway host g's host.toml (port 0 = ul0 replaying the
    # Geneve pcap, port 1 = ext0 on net_null); the NAT rules come from the cache. Without a
    # VRRP instance here, ul0 holds the tunnel address itself, as the group's master would.
    toml_head "$1" "$MEM_MB" 8191 "$DP_SOCK" "$NAT_CONNECTIONS"
    toml_port ul0 "net_pcap0,rx_pcap=$GW_PCAP,infinite_rx=1" '"10.88.0.13/24", "10.88.0.100/32"' "$GW_UL_MAC"
    toml_port ext0 "net_null0,no-rx=1" '"203.0.113.2/24"'
    toml_route 0.0.0.0/0 203.0.113.1
    toml_neighbour ext0 203.0.113.1 "$GW_EXT_NEXT_HOP_MAC"
    printf '\n[nat]\noutside_port = "ext0"\n'
}

ew_port() { # NAME DEVARGS: one [[port]] of host a
    if [[ "$1" == ul0 ]]; then
        toml_port "$1" "$2" '"10.88.0.11/24"' "$EW_UL_MAC"
    else
        toml_port "$1" "$2"
    fi
}

ew_config() { # $1 = file prefix, $2 = out|in: host a's host.toml (port 0 = net_pcap, 1 = net_null)
    toml_head "$1" "$EW_MEM_MB" "$EW_MBUFS" "$DP_SOCK" "$EW_CONNECTIONS"
    if [[ "$2" == out ]]; then
        ew_port vm1 "net_pcap0,rx_pcap=$EW_OUT_PCAP,infinite_rx=1"
        ew_port ul0 "net_null0,no-rx=1"
    else
        ew_port ul0 "net_pcap0,rx_pcap=$EW_IN_PCAP,infinite_rx=1"
        ew_port vm1 "net_null0,no-rx=1"
    fi
    toml_neighbour ul0 10.88.0.12 "$EW_PEER_MAC"
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
        if [[ -n "$SECOND_BIN" ]]; then
            aegis_config "$R-aegis-u" > "$CFG"
            run "aegis-dataplane ($SECOND_TAG)" "$R-aegis-u" "$SECOND_BIN" --config "$CFG"
        fi
    else
        printf '%s\t%s\t0\t0\t0\n' "aegis-dataplane" "$AEGIS_STATUS" >> "$RESULTS"
    fi
    if [[ "$NAT_SCENARIOS" -eq 1 && "$AEGIS_STATUS" == ok ]]; then
        CFG="$WORK/aegis-nat.toml"
        nat_config "$R-nat" > "$CFG"
        cp "$CFG" "$LOG_DIR/aegis-nat.toml"
        NAT_CHECK="eth1 $NAT_ADDRESS" run "aegis nat (routed)" "$R-nat" "$AEGIS_BIN" --config "$CFG"
        CFG="$WORK/aegis-nat-gw.toml"
        gw_config "$R-nat-gw" > "$CFG"
        cp "$CFG" "$LOG_DIR/aegis-nat-gw.toml"
        # The closed port 9, as for east-west: host g runs on its cached slice.
        NAT_CHECK="ext0 203.0.113.10" run "aegis nat (overlay gateway)" "$R-nat-gw" "$AEGIS_BIN" \
            --config "$CFG" --controlplane 127.0.0.1:9 --host g --controlplane-cache "$GW_CACHE"
        if [[ -n "$COMPARE_BIN" ]]; then
            CFG="$WORK/aegis-nat.toml"
            nat_config "$R-nat-u" > "$CFG"
            NAT_CHECK="eth1 $NAT_ADDRESS" run "aegis nat (routed) ($SECOND_TAG)" "$R-nat-u" \
                "$SECOND_BIN" --config "$CFG"
            CFG="$WORK/aegis-nat-gw.toml"
            gw_config "$R-nat-gw-u" > "$CFG"
            NAT_CHECK="ext0 203.0.113.10" run "aegis nat (overlay gateway) ($SECOND_TAG)" \
                "$R-nat-gw-u" "$SECOND_BIN" --config "$CFG" --controlplane 127.0.0.1:9 --host g \
                --controlplane-cache "$GW_CACHE"
        fi
    elif [[ "$NAT_SCENARIOS" -eq 1 ]]; then
        for n in "aegis nat (routed)" "aegis nat (overlay gateway)"; do
            printf '%s\t%s\t0\t0\t0\n' "$n" "$AEGIS_STATUS" >> "$RESULTS"
        done
    fi
    [[ "$EW_SCENARIOS" -eq 1 ]] || continue
    # shellcheck disable=SC2046
    run "testpmd io ew-out" "$R-io-ew" dpdk-testpmd -l 0,1 --main-lcore 0 \
        $(eal_args "$R-io-ew" "$EW_OUT_PCAP" "$EW_MEM_MB") -- --forward-mode=io --nb-cores=1 \
        --burst=32 --total-num-mbufs="$EW_MBUFS" --stats-period=3600
    # shellcheck disable=SC2046
    run "l3fwd lpm ew-out" "$R-l3fwd-ew" "$L3FWD" -l 1 \
        $(eal_args "$R-l3fwd-ew" "$EW_OUT_PCAP" "$EW_MEM_MB") -- \
        -p 0x3 -P --config="(0,0,1)" --parse-ptype --lookup=lpm \
        --rule_ipv4="$EW_RULES4" --rule_ipv6="$RULES6"
    for dir in out in; do
        if [[ "$AEGIS_STATUS" != ok ]]; then
            printf '%s\t%s\t0\t0\t0\n' "aegis east-west $dir" "$AEGIS_STATUS" >> "$RESULTS"
            continue
        fi
        CFG="$WORK/aegis-ew-$dir.toml"
        ew_config "$R-ew-$dir" "$dir" > "$CFG"
        cp "$CFG" "$LOG_DIR/aegis-ew-$dir.toml"
        # Port 9 on the loopback is closed: the dataplane runs on the cached slice, logs that
        # the control plane does not answer, and keeps retrying in the background.
        run "aegis east-west $dir" "$R-ew-$dir" "$AEGIS_BIN" --config "$CFG" \
            --controlplane 127.0.0.1:9 --host a --controlplane-cache "$EW_CACHE"
        if [[ -n "$SECOND_BIN" ]]; then
            ew_config "$R-ew-$dir-u" "$dir" > "$CFG"
            run "aegis east-west $dir ($SECOND_TAG)" "$R-ew-$dir-u" "$SECOND_BIN" \
                --config "$CFG" --controlplane 127.0.0.1:9 --host a --controlplane-cache "$EW_CACHE"
        fi
    done
done

# --- aegis-pktgen scenarios: latency over memif, outage during a restart ----------------
# DPDK 22.11's memif server crashes when its client disconnects (it polls unmapped rings),
# so every generator run gets a freshly started dataplane, stopped right after.
LAT_MAX_JSON="$WORK/latency-max.json"
LAT_JSON="$WORK/latency.json"
GAP_JSON="$WORK/restart-gap.json"
PKTGEN_FLOWS=(--flows "$FLOWS" --dst-ip 10.0.0.0/16 --src-ip 198.18.0.1 --dst-mac "$DUT_MAC")

pg_config() { # $1 = file prefix, $2 = devargs eth0, $3 = devargs eth1, $4 = admin socket
    toml_head "$1" "$MEM_MB" 8191 "$4"
    toml_port eth0 "$2" '"192.168.0.1/24"' "$DUT_MAC"
    toml_port eth1 "$3" '"192.168.1.1/24"'
    toml_route 10.0.0.0/8 192.168.1.2
    toml_neighbour eth1 192.168.1.2 02:00:00:00:00:02
}

# start_dp CONFIG LOG ADMIN_SOCKET: starts aegis-dataplane (RUN_PID) and waits for its admin
# socket (the ports are up by then).
start_dp() {
    rm -f "$3"
    "$AEGIS_BIN" --config "$1" </dev/null >>"$2" 2>&1 &
    RUN_PID=$!
    for _ in $(seq 300); do
        [[ -S "$3" ]] && return 0
        kill -0 "$RUN_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# pktgen_run PREFIX JSON ARGS...: the generator on CPU 0 (main lcore 1 only times the run).
pktgen_run() {
    local prefix="$1" json="$2"; shift 2
    PREFIXES+=("$prefix")
    "$PKTGEN" run --quiet --output json "$@" -- -l 0,1 --main-lcore 1 --huge-dir "$HUGE_DIR" \
        --huge-unlink -m 256 --no-pci --file-prefix "$prefix" >"$json" 2>>"$LOG_DIR/$prefix.log"
}

json_field() { # FILE DOTTED.PATH
    python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$1" "$2"
}

if [[ "$PKTGEN_SCENARIOS" -eq 1 && "$AEGIS_STATUS" == ok ]]; then
    # Latency: maximum rate first, then 50 % of it.
    LCFG="$WORK/aegis-memif.toml"
    LSOCK="$WORK/aegis-memif.sock"
    MEMIF0="net_memif0,role=server,socket=$WORK/memif0.sock"
    MEMIF1="net_memif1,role=server,socket=$WORK/memif1.sock"
    PG_PORTS=(--port "net_memif0,role=client,socket=$WORK/memif0.sock"
              --rx-port "net_memif1,role=client,socket=$WORK/memif1.sock")
    for step in max half; do
        json="$LAT_MAX_JSON"; rate=line
        if [[ "$step" == half ]]; then
            json="$LAT_JSON"
            max_pps="$(json_field "$LAT_MAX_JSON" rx.pps 2>/dev/null || echo 0)"
            rate="$(python3 -c "import sys; print(int(float(sys.argv[1]) * 0.5))" "$max_pps")"
            [[ "$rate" -gt 0 ]] || { say "latency: no maximum rate measured; skipped"; break; }
        fi
        prefix="$P-mem-$step"
        PREFIXES+=("$prefix")
        pg_config "$prefix" "$MEMIF0" "$MEMIF1" "$LSOCK" > "$LCFG"
        cp "$LCFG" "$LOG_DIR/aegis-memif.toml"
        say "latency ($step): aegis-pktgen --rate $rate through aegis-dataplane over memif"
        if start_dp "$LCFG" "$LOG_DIR/$prefix.log" "$LSOCK"; then
            pktgen_run "$prefix-pg" "$json" "${PG_PORTS[@]}" --rate "$rate" \
                --duration "$DURATION" "${PKTGEN_FLOWS[@]}" \
                || say "latency ($step): aegis-pktgen failed; see $LOG_DIR/$prefix-pg.log"
        else
            say "latency ($step): aegis-dataplane did not start; see $LOG_DIR/$prefix.log"
        fi
        stop_run
    done

    # Outage during a restart, on veth pairs (they outlive the process on either end).
    if command -v ip >/dev/null; then
        V="aeg$$"
        ip link add "${V}g0" type veth peer name "${V}d0" && VETHS+=("${V}g0")
        ip link add "${V}g1" type veth peer name "${V}d1" && VETHS+=("${V}g1")
        for i in "${V}g0" "${V}d0" "${V}g1" "${V}d1"; do
            sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1" 2>/dev/null || true
            ip link set "$i" up 2>/dev/null || true
        done
        GCFG="$WORK/aegis-veth.toml"
        GSOCK="$WORK/aegis-veth.sock"
        GAP_DURATION=$(( DURATION < 6 ? 6 : DURATION ))
        pg_config "$P-veth" "net_af_packet0,iface=${V}d0" "net_af_packet1,iface=${V}d1" \
            "$GSOCK" > "$GCFG"
        cp "$GCFG" "$LOG_DIR/aegis-veth.toml"
        PREFIXES+=("$P-veth" "$P-veth-pg")   # pktgen_run runs in a subshell below
        say "restart gap: aegis-pktgen at $GAP_RATE pps over veths, aegis-dataplane restarted mid-run"
        if start_dp "$GCFG" "$LOG_DIR/$P-veth.log" "$GSOCK"; then
            pktgen_run "$P-veth-pg" "$GAP_JSON" --port "net_af_packet0,iface=${V}g0" \
                --rx-port "net_af_packet1,iface=${V}g1" --rate "$GAP_RATE" \
                --duration "$GAP_DURATION" "${PKTGEN_FLOWS[@]}" &
            PG_PID=$!
            sleep $(( GAP_DURATION / 2 ))
            say "restart gap: stopping aegis-dataplane (SIGINT), then starting it again"
            stop_run
            start_dp "$GCFG" "$LOG_DIR/$P-veth.log" "$GSOCK" \
                || say "restart gap: aegis-dataplane did not come back; see $LOG_DIR/$P-veth.log"
            wait "$PG_PID" || say "restart gap: aegis-pktgen failed; see $LOG_DIR/$P-veth-pg.log"
            PG_PID=""
            stop_run
        else
            say "restart gap: aegis-dataplane did not start; see $LOG_DIR/$P-veth.log"
        fi
    else
        say "restart gap: skipped (no ip command)"
    fi
fi

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
    echo "         $ROUTES random routes (/16../24); 1 worker core, busy polling, aegis bursts of $BURST;"
    echo "         ${DURATION} s per scenario, $ROUNDS round(s) (median shown)"
    [[ -z "$COMPARE_BURST" ]] || echo "         compare side ($SECOND_TAG): bursts of $COMPARE_BURST"
    if [[ "$EW_SCENARIOS" -eq 1 ]]; then
        echo "East-west: $EW_FLOWS x 64 B inner UDP frames, one per flow, every flow an established"
        echo "         connection after the first replay (out: VM port -> Geneve, 110 B out; in:"
        echo "         110 B Geneve -> VM port); testpmd io ew-out = I/O ceiling of the out pcap"
    fi
    if [[ "$NAT_SCENARIOS" -eq 1 ]]; then
        echo "NAT:     routed = the pcap above with source NAT (endpoint-dependent) of 198.18.0.0/15"
        echo "         to $NAT_ADDRESS; overlay gateway = $PACKETS x 110 B Geneve to the tunnel address,"
        echo "         VPC blue's SnatRule to 203.0.113.10; $FLOWS sessions each, created in the first"
        echo "         replay, then every packet a session hit; dataplane.connections $NAT_CONNECTIONS"
    fi
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$TRAFFIC"
REPORT="$OUT_DIR/bench-$STAMP.txt"
PG_ARGS=()
[[ -s "$LAT_MAX_JSON" ]] && PG_ARGS+=("max=$LAT_MAX_JSON")
[[ -s "$LAT_JSON" ]] && PG_ARGS+=("latency=$LAT_JSON")
[[ -s "$GAP_JSON" ]] && PG_ARGS+=("restart=$GAP_JSON")
python3 "$ROOT/scripts/bench/report.py" "$RESULTS" "$MACHINE" "$TRAFFIC" ${PG_ARGS[@]+"${PG_ARGS[@]}"} > "$REPORT"
for name in "aegis-dataplane" "aegis nat (routed)" "aegis nat (overlay gateway)" \
    "aegis east-west out" "aegis east-west in"; do
    [[ -s "$WORK/runtime-$name.txt" ]] || continue
    { echo; echo "$name: aegisctl dp show runtime, show errors (last round):"
      cat "$WORK/runtime-$name.txt"; } >> "$REPORT"
done
cp "$REPORT" "$OUT_DIR/latest.txt"
echo
cat "$REPORT"
echo
say "written to $REPORT (logs in $LOG_DIR)"
