#!/usr/bin/env python3
"""Formats the benchmark results as one table with the machine description.

Usage: report.py RESULTS_TSV MACHINE_TXT TRAFFIC_TXT

RESULTS_TSV lines: scenario <TAB> status <TAB> packets <TAB> seconds <TAB> mpps
(status "ok" or a reason such as "not built: ..." / "failed: ..."). Ratios are against the
rows named "l3fwd lpm" and "testpmd io" from the same run.
"""
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rows = []
    with open(argv[0]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            name, status, packets, seconds, mpps = parts
            rows.append((name, status, float(mpps) if status == "ok" else None))
    machine = open(argv[1]).read().rstrip()
    traffic = open(argv[2]).read().rstrip()
    ref = {name: mpps for name, status, mpps in rows if mpps}
    l3fwd, io = ref.get("l3fwd lpm"), ref.get("testpmd io")

    def ratio(x, base):
        return f"{x / base:.2f}" if x and base else "-"

    out = [machine, traffic, ""]
    header = f"{'scenario':<18} {'Mpps':>8} {'ns/pkt':>8} {'vs l3fwd':>9} {'vs testpmd io':>14}"
    out += [header, "-" * len(header)]
    for name, status, mpps in rows:
        if mpps:
            out.append(
                f"{name:<18} {mpps:>8.2f} {1000.0 / mpps:>8.1f} {ratio(mpps, l3fwd):>9} "
                f"{ratio(mpps, io):>14}"
            )
        else:
            out.append(f"{name:<18} {status}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
