#!/usr/bin/env python3
"""Formats the benchmark results as one table with the machine description.

Usage: report.py RESULTS_TSV MACHINE_TXT TRAFFIC_TXT

RESULTS_TSV lines: scenario <TAB> status <TAB> packets <TAB> seconds <TAB> mpps, one per
scenario and round (status "ok" or a reason such as "not built: ..." / "failed: ...").
Each scenario shows the median of its successful rounds (and min-max with several rounds).
Ratios are against the medians of "l3fwd lpm" and "testpmd io" from the same run.
"""
import statistics
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    order, ok, problems = [], {}, {}
    with open(argv[0]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            name, status, _packets, _seconds, mpps = parts
            if name not in order:
                order.append(name)
            if status == "ok":
                ok.setdefault(name, []).append(float(mpps))
            else:
                problems.setdefault(name, []).append(status)
    machine = open(argv[1]).read().rstrip()
    traffic = open(argv[2]).read().rstrip()
    median = {name: statistics.median(v) for name, v in ok.items()}
    l3fwd, io = median.get("l3fwd lpm"), median.get("testpmd io")
    rounds = max((len(v) + len(problems.get(k, [])) for k, v in ok.items()), default=1)

    def ratio(x, base):
        return f"{x / base:.2f}" if base else "-"

    out = [machine, traffic, ""]
    header = f"{'scenario':<18} {'Mpps':>8} {'ns/pkt':>8} {'vs l3fwd':>9} {'vs testpmd io':>14}"
    if rounds > 1:
        header += f" {'min-max Mpps':>14}"
    out += [header, "-" * len(header)]
    for name in order:
        if name in median:
            m = median[name]
            row = (
                f"{name:<18} {m:>8.2f} {1000.0 / m:>8.1f} {ratio(m, l3fwd):>9} "
                f"{ratio(m, io):>14}"
            )
            if rounds > 1:
                row += f" {min(ok[name]):>6.2f}-{max(ok[name]):<7.2f}"
            if name in problems:
                row += f"  ({len(problems[name])} round(s): {problems[name][0]})"
            out.append(row.rstrip())
        else:
            out.append(f"{name:<18} {problems[name][0]}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
