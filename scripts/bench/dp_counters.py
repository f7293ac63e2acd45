#!/usr/bin/env python3
"""One-line summary of an aegis-dataplane run for the benchmark table.

Usage: dp_counters.py ERRORS_JSON [RUNTIME_JSON]

ERRORS_JSON is `aegisctl dp show errors -o json` ({"total": [{"reason", "count", ...}]}),
RUNTIME_JSON `aegisctl dp show runtime -o json`. Prints "drops 0" or "drops N (reason n,
...)", followed by ", connections N" when the runtime reports the workers' connection-table
sizes (a `connections` field per worker; older dataplanes do not have it).
"""
import json
import sys


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
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
