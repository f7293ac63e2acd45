//! Long-lived application traffic for failover tests: a TCP echo server, a client that
//! exchanges one numbered 64-byte message every 10 ms and checks each echo (its JSON summary
//! gives the longest time between two echoes — the traffic gap — or the error that ended
//! it), and a burst of UDP flows that each hold a NAT session. Python, so the kernel's own
//! TCP stack is the one that must survive the failover.

use std::time::Duration;

use serde_json::Value;

use crate::error::{LabError, Result};
use crate::lab::{Lab, ProcId};

/// Echo server: accepts one connection on ADDR PORT, prints the peer, echoes until EOF.
const ECHO_SERVER_PY: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(60)
print("listening", flush=True)
c, a = s.accept()
print("peer", a[0], a[1], flush=True)
c.settimeout(30)
while True:
    d = c.recv(4096)
    if not d:
        break
    c.sendall(d)
print("closed cleanly", flush=True)
"#;

/// Client: from SRC to DST PORT, one 64-byte numbered message every 10 ms for SECONDS,
/// each echoed back before the next; prints a JSON summary.
const STREAM_CLIENT_PY: &str = r#"
import json, socket, sys, time
dst, port, src, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
out = {"ok": False, "exchanged": 0, "max_gap_ms": 0.0}
try:
    c = socket.create_connection((dst, port), timeout=10, source_address=(src, 0))
    c.settimeout(15)
    end = time.monotonic() + seconds
    last = time.monotonic()
    seq = 0
    while time.monotonic() < end:
        msg = seq.to_bytes(8, "big") * 8
        c.sendall(msg)
        got = b""
        while len(got) < 64:
            d = c.recv(64 - len(got))
            if not d:
                raise ConnectionError("connection closed by the peer")
            got += d
        if got != msg:
            raise ValueError("echo mismatch at %d" % seq)
        now = time.monotonic()
        out["max_gap_ms"] = max(out["max_gap_ms"], (now - last) * 1000)
        last = now
        seq += 1
        out["exchanged"] = seq
        time.sleep(0.01)
    c.close()
    out["ok"] = True
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out), flush=True)
"#;

/// Opens N UDP flows from SRC (one datagram each from its own port) to DST PORT.
const UDP_FLOWS_PY: &str = r#"
import socket, sys
src, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.sendto(b"flow %d" % i, (dst, port))
    socks.append(s)
print("sent", n, flush=True)
"#;

/// Waits until `text` appears in process `id`'s log (10 s).
pub fn wait_log(lab: &mut Lab, id: ProcId, text: &str) -> Result<()> {
    for _ in 0..500 {
        if lab.proc(id).log().contains(text) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(LabError::Timeout {
        what: format!("{text:?} in the log of {}", lab.proc(id).name()),
        waited: Duration::from_secs(10),
        detail: lab.proc(id).log(),
    })
}

/// Starts the echo server on `host` at `addr`:`port` and waits until it listens.
pub fn echo_server(
    lab: &mut Lab,
    host: &str,
    name: &str,
    addr: &str,
    port: &str,
) -> Result<ProcId> {
    let id = lab.spawn(host, name, "python3", &["-c", ECHO_SERVER_PY, addr, port])?;
    wait_log(lab, id, "listening")?;
    Ok(id)
}

/// Starts the streaming client on `host`: from `src` to `dst`:`port` for `seconds`.
pub fn stream_client(
    lab: &mut Lab,
    host: &str,
    name: &str,
    (dst, port): (&str, &str),
    src: &str,
    seconds: &str,
) -> Result<ProcId> {
    lab.spawn(
        host,
        name,
        "python3",
        &["-c", STREAM_CLIENT_PY, dst, port, src, seconds],
    )
}

/// Opens `n` UDP flows from `src` on `host` to `dst`:`port`.
pub fn udp_flows(
    lab: &Lab,
    host: &str,
    src: &str,
    (dst, port): (&str, &str),
    n: u64,
) -> Result<()> {
    lab.exec_ok(
        host,
        "python3",
        &["-c", UDP_FLOWS_PY, src, dst, port, &n.to_string()],
    )
    .map(|_| ())
}

/// The client's JSON summary (the last JSON line of its log).
pub fn summary(log: &str) -> Result<Value> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| LabError::Parse {
            cmd: "stream client".into(),
            detail: "no JSON summary".into(),
            output: log.to_string(),
        })?;
    serde_json::from_str(line).map_err(|e| LabError::Parse {
        cmd: "stream client".into(),
        detail: e.to_string(),
        output: line.to_string(),
    })
}
