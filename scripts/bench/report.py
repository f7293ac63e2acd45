#!/usr/bin/env python3
"""Formats the benchmark results as one table with the machine description.

Usage: report.py RESULTS_TSV MACHINE_TXT TRAFFIC_TXT [max=JSON] [latency=JSON] [restart=JSON]

RESULTS_TSV lines: scenario <TAB> status <TAB> packets <TAB> seconds <TAB> mpps [<TAB> note],
one per scenario and round (status "ok" or a reason such as "not built: ..." / "failed: ...";
the note, for aegis scenarios, is the dataplane's drop count, listed under the table).
Each scenario shows the median of its successful rounds (and min-max with several rounds).
Ratios are against the medians of "l3fwd lpm" and "testpmd io" from the same run; the
"vs l3fwd same pcap" column compares each scenario with l3fwd on the same input: the
east-west scenarios (names with "east-west" or "ew-") with "l3fwd lpm ew-out" (l3fwd
routing the east-west pcap's inner packets), "aegis nat (overlay gateway)" with nothing (its
Geneve pcap has no l3fwd run), the others with "l3fwd lpm".

The optional JSON files are `aegis-pktgen run --output json` summaries: max = line rate
through aegis-dataplane over memif, latency = the run at 50 % of that, restart = the run
during which aegis-dataplane was restarted (its longest gap is the outage).
"""
import json
import statistics
import sys


def pktgen_section(files):
    """Lines describing the aegis-pktgen scenarios, from their JSON summaries."""
    out = []
    runs = {}
    for name, path in files.items():
        try:
            with open(path) as f:
                runs[name] = json.load(f)
        except (OSError, ValueError) as e:
            out.append(f"{name}: no result ({e})")
    if "max" in runs or "latency" in runs:
        out += ["", "aegis-pktgen -> aegis-dataplane (routing) -> aegis-pktgen, 2 memif pairs, "
                "64 B UDP, 1 worker core each:"]
        header = (f"{'scenario':<30} {'Mpps':>8} {'loss %':>8} {'lat min':>9} {'p50':>9} "
                  f"{'p99':>9} {'max':>9}")
        out += [header, "-" * len(header)]
        for name, label in (("max", "line rate (maximum)"), ("latency", "50 % of maximum")):
            r = runs.get(name)
            if not r:
                continue
            lat = r["latency_ns"]
            us = lambda ns: f"{ns / 1000:.1f} us"
            out.append(
                f"{label:<30} {r['rx']['pps'] / 1e6:>8.2f} {r['loss_ratio'] * 100:>8.3f} "
                f"{us(lat['min']):>9} {us(lat['p50']):>9} {us(lat['p99']):>9} {us(lat['max']):>9}"
            )
    r = runs.get("restart")
    if r:
        g = r.get("longest_gap") or {}
        out += [
            "",
            f"Outage during an aegis-dataplane restart (veth pairs, net_af_packet, "
            f"{r['traffic']['rate']}): longest gap {r['longest_gap_ms']:.1f} ms, "
            f"{g.get('missing_packets', 0)} packets missing across it, "
            f"{r['lost_packets']} lost in the run",
        ]
    return out


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[3:]):
        print(__doc__, file=sys.stderr)
        return 2
    extra = dict(a.split("=", 1) for a in argv[3:])
    order, ok, problems, notes = [], {}, {}, {}
    with open(argv[0]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) not in (5, 6):
                continue
            name, status, _packets, _seconds, mpps = parts[:5]
            if name not in order:
                order.append(name)
            if len(parts) == 6 and parts[5] and parts[5] not in notes.setdefault(name, []):
                notes[name].append(parts[5])
            if status == "ok":
                ok.setdefault(name, []).append(float(mpps))
            else:
                problems.setdefault(name, []).append(status)
    machine = open(argv[1]).read().rstrip()
    traffic = open(argv[2]).read().rstrip()
    median = {name: statistics.median(v) for name, v in ok.items()}
    l3fwd, io = median.get("l3fwd lpm"), median.get("testpmd io")
    l3fwd_ew = median.get("l3fwd lpm ew-out")

    def same_pcap_base(name):
        if "overlay gateway" in name:
            return None
        return l3fwd_ew if ("east-west" in name or "ew-" in name) else l3fwd
    rounds = max((len(v) + len(problems.get(k, [])) for k, v in ok.items()), default=1)

    def ratio(x, base):
        return f"{x / base:.2f}" if base else "-"

    out = [machine, traffic, ""]
    w = max([18] + [len(n) for n in order])
    header = (f"{'scenario':<{w}} {'Mpps':>8} {'ns/pkt':>8} {'vs l3fwd':>9} {'vs testpmd io':>14}"
              f" {'vs l3fwd same pcap':>19}")
    if rounds > 1:
        header += f" {'min-max Mpps':>14}"
    out += [header, "-" * len(header)]
    for name in order:
        if name in median:
            m = median[name]
            row = (
                f"{name:<{w}} {m:>8.2f} {1000.0 / m:>8.1f} {ratio(m, l3fwd):>9} "
                f"{ratio(m, io):>14} {ratio(m, same_pcap_base(name)):>19}"
            )
            if rounds > 1:
                row += f" {min(ok[name]):>6.2f}-{max(ok[name]):<7.2f}"
            if name in problems:
                row += f"  ({len(problems[name])} round(s): {problems[name][0]})"
            out.append(row.rstrip())
        else:
            out.append(f"{name:<{w}} {problems[name][0]}")
    if notes:
        out += ["", "aegisctl dp show errors (and connection-table entries) after each run:"]
        out += [f"  {name}: {' | '.join(notes[name])}" for name in order if name in notes]
    out += pktgen_section(extra)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
