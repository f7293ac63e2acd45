#!/usr/bin/env python3
"""One-line summary of an aegis-dataplane run for the benchmark table.

Usage: dp_counters.py ERRORS_JSON [RUNTIME_JSON]
       dp_counters.py --translated ADDRESS CAPTURE_JSON

ERRORS_JSON is `aegisctl dp show errors -o json` ({"total": [{"reason", "count", ...}]}),
RUNTIME_JSON `aegisctl dp show runtime -o json`. Prints "drops 0" or "drops N (reason n,
...)", followed by ", connections N" when the runtime reports the workers' connection-table
sizes (a `connections` field per worker; older dataplanes do not have it).

--translated: CAPTURE_JSON is `aegisctl dp capture --direction tx -o json` on the NAT
outside port (one JSON object per line, "summary" like "IP ttl 63 A.B.C.D.PORT > ...").
Prints "translated N/M to ADDRESS (outside ports P-Q)" and exits 1 unless packets were
captured and every one has ADDRESS as its source.
"""
import json
import re
import sys

SOURCE = re.compile(r"^IP ttl \d+ (\d+\.\d+\.\d+\.\d+)\.(\d+) > ")


def translated(address, path):
    """The --translated check: (line, ok)."""
    ports, total = [], 0
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                total += 1
                m = SOURCE.match(json.loads(line).get("summary", ""))
                if m and m.group(1) == address:
                    ports.append(int(m.group(2)))
    except (OSError, ValueError) as e:
        return f"translated unknown (capture: {e})", False
    line = f"translated {len(ports)}/{total} to {address}"
    if ports:
        line += f" (outside ports {min(ports)}-{max(ports)})"
    return line, total > 0 and len(ports) == total


def main(argv):
    if not argv or (argv[0] == "--translated" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "--translated":
        line, ok = translated(argv[1], argv[2])
        print(line)
        return 0 if ok else 1
    try:
        with open(argv[0]) as f:
            errors = json.load(f)
    except (OSError, ValueError) as e:
        print(f"drops unknown (show errors: {e})")
        return 0
    counted = sorted(((c["count"], c["reason"]) for c in errors.get("total", []) if c["count"]),
                     reverse=True)
    total = sum(n for n, _ in counted)
    line = f"drops {total}"
    if counted:
        line += " (" + ", ".join(f"{r} {n}" for n, r in counted[:4])
        line += ", ...)" if len(counted) > 4 else ")"
    if len(argv) > 1:
        try:
            with open(argv[1]) as f:
                workers = json.load(f).get("workers", [])
            conns = [w["connections"] for w in workers if "connections" in w]
            if conns:
                line += f", connections {sum(conns)}"
        except (OSError, ValueError):
            pass
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
