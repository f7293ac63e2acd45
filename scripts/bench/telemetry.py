#!/usr/bin/env python3
"""DPDK telemetry client for the benchmark: finds a port by name in a running DPDK process
and measures its tx rate from `/ethdev/stats` (two samples, N seconds apart).

Usage:
  telemetry.py wait    RUNTIME_DIR PORT_NAME [--timeout S] [--pid P]
                                             wait until the port sends (give up if P exits)
  telemetry.py measure RUNTIME_DIR PORT_NAME SECONDS           print "packets seconds mpps"
  telemetry.py stats   RUNTIME_DIR PORT_NAME                   print the port's stats as JSON

RUNTIME_DIR is /var/run/dpdk/<file-prefix> (the socket is dpdk_telemetry.v2 inside it).
"""
import json
import os
import socket
import sys
import time


class TelemetryError(Exception):
    pass


class Telemetry:
    def __init__(self, runtime_dir):
        path = os.path.join(runtime_dir, "dpdk_telemetry.v2")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise TelemetryError(f"cannot connect to {path}: {e}") from e
        hello = json.loads(self.sock.recv(65536).decode())
        self.max_len = int(hello.get("max_output_len", 16384))

    def query(self, cmd):
        try:
            self.sock.send(cmd.encode())
            reply = self.sock.recv(max(self.max_len, 65536))
        except OSError as e:
            raise TelemetryError(f"telemetry connection lost on {cmd}: {e}") from e
        if not reply:
            raise TelemetryError(f"telemetry closed the connection on {cmd}")
        data = json.loads(reply.decode())
        key = cmd.split(",", 1)[0]
        if key not in data:
            raise TelemetryError(f"unexpected reply to {cmd}: {data}")
        return data[key]

    def port_id(self, name):
        for pid in self.query("/ethdev/list") or []:
            info = self.query(f"/ethdev/info,{pid}") or {}
            if info.get("name") == name:
                return pid
        raise TelemetryError(f"no ethdev port named {name!r}")

    def stats(self, pid):
        return self.query(f"/ethdev/stats,{pid}")

    def close(self):
        self.sock.close()


def alive(pid):
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def connect(runtime_dir, timeout, pid=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Telemetry(runtime_dir)
        except (TelemetryError, ValueError) as e:
            if not alive(pid):
                raise TelemetryError(f"process {pid} exited before telemetry came up")
            if time.monotonic() > deadline:
                raise TelemetryError(f"telemetry not reachable after {timeout}s: {e}")
            time.sleep(0.2)


def cmd_wait(runtime_dir, name, timeout, pid=None):
    deadline = time.monotonic() + timeout
    t = connect(runtime_dir, timeout, pid)
    try:
        while True:
            try:
                port = t.port_id(name)
                first = t.stats(port)["opackets"]
                time.sleep(0.3)
                if t.stats(port)["opackets"] > first:
                    return 0
            except TelemetryError:
                if not alive(pid):
                    raise TelemetryError(f"process {pid} exited while waiting for traffic")
                t.close()
                t = connect(runtime_dir, max(1.0, deadline - time.monotonic()), pid)
            if time.monotonic() > deadline:
                raise TelemetryError(f"port {name!r} sent nothing within {timeout}s")
            time.sleep(0.3)
    finally:
        t.close()


def cmd_measure(runtime_dir, name, seconds):
    t = connect(runtime_dir, 10)
    try:
        pid = t.port_id(name)
        t0 = time.monotonic()
        p0 = t.stats(pid)["opackets"]
        time.sleep(seconds)
        t1 = time.monotonic()
        p1 = t.stats(pid)["opackets"]
    finally:
        t.close()
    packets = p1 - p0
    elapsed = t1 - t0
    print(f"{packets} {elapsed:.6f} {packets / elapsed / 1e6:.3f}")
    return 0


def cmd_stats(runtime_dir, name):
    t = connect(runtime_dir, 10)
    try:
        print(json.dumps(t.stats(t.port_id(name)), sort_keys=True))
    finally:
        t.close()
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, runtime_dir, name = argv[0], argv[1], argv[2]
    try:
        if cmd == "wait":
            timeout, pid = 60.0, None
            rest = argv[3:]
            while len(rest) >= 2 and rest[0] in ("--timeout", "--pid"):
                if rest[0] == "--timeout":
                    timeout = float(rest[1])
                else:
                    pid = int(rest[1])
                rest = rest[2:]
            if rest:
                print(__doc__, file=sys.stderr)
                return 2
            return cmd_wait(runtime_dir, name, timeout, pid)
        if cmd == "measure" and len(argv) == 4:
            return cmd_measure(runtime_dir, name, float(argv[3]))
        if cmd == "stats":
            return cmd_stats(runtime_dir, name)
    except TelemetryError as e:
        print(f"telemetry.py: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
