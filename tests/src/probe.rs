//! Probing a lab with ordinary tools and reading their output: `ping` summaries, `traceroute`
//! hops, and a TCP bulk transfer between two hosts checked by SHA-256 at both ends (python3
//! stdlib on both sides, so the Linux TCP stack is the peer).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::cmd;
use crate::error::{LabError, Result};
use crate::lab::Lab;
use crate::wait::{self, Poll};

/// TCP sink: listens on argv[1]:argv[2], prints "listening", accepts one connection, reads to
/// EOF, replies with the SHA-256 hex digest, prints "<bytes> <digest>". argv[3] is a timeout.
pub const TCP_SINK_PY: &str = "\
import hashlib, socket, sys
t = float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(t)
print('listening', flush=True)
c, _ = s.accept()
c.settimeout(t)
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    h.update(b)
    n += len(b)
c.sendall(h.hexdigest().encode())
c.close()
print(n, h.hexdigest(), flush=True)
";

/// TCP source: connects to argv[1]:argv[2] (retrying up to 10 s), sends argv[3] random bytes,
/// half-closes, reads the sink's digest, prints "<bytes> <digest> <sink's digest>".
pub const TCP_SOURCE_PY: &str = "\
import hashlib, os, socket, sys, time
addr, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
deadline = time.time() + 10
while True:
    try:
        s = socket.create_connection((addr, port), timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
s.settimeout(60)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
reply = b''
while True:
    b = s.recv(4096)
    if not b:
        break
    reply += b
print(len(data), hashlib.sha256(data).hexdigest(), reply.decode(), flush=True)
";

/// Counts from a ping summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingSummary {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

/// Reads "N packets transmitted, M received" from ping's output.
pub fn ping_summary(output: &str) -> Option<PingSummary> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    let transmitted = nums.next()??;
    let received = nums.next()??;
    Some(PingSummary {
        transmitted,
        received,
    })
}

/// One traceroute hop: its number and the addresses that answered (empty when all `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// TTL of the probes.
    pub ttl: u32,
    /// Distinct addresses that answered, in order of appearance.
    pub addrs: Vec<Ipv4Addr>,
}

/// Parses `traceroute -n` output into hops.
pub fn traceroute_hops(output: &str) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let Some(ttl) = words.next().and_then(|w| w.parse::<u32>().ok()) else {
            continue;
        };
        let mut addrs = Vec::new();
        for w in words {
            let w = w.trim_matches(|c| c == '(' || c == ')');
            if let Ok(a) = w.parse::<Ipv4Addr>() {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        hops.push(Hop { ttl, addrs });
    }
    hops
}

/// What both ends of a TCP transfer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes the source sent.
    pub sent: u64,
    /// SHA-256 of what the source sent.
    pub sent_sha256: String,
    /// Bytes the sink received.
    pub received: u64,
    /// SHA-256 of what the sink received.
    pub received_sha256: String,
    /// The digest the sink sent back over the connection (as the source read it).
    pub echoed_sha256: String,
}

/// Sends `bytes` random bytes over TCP from `client` to `server_ip:port` on `server`.
pub fn tcp_transfer(
    lab: &mut Lab,
    server: &str,
    server_ip: &str,
    port: u16,
    client: &str,
    bytes: u64,
    limit: Duration,
) -> Result<Transfer> {
    let (port_s, size_s, t_s) = (
        port.to_string(),
        bytes.to_string(),
        limit.as_secs().max(1).to_string(),
    );
    let sink_name = format!("tcp-sink-{port}");
    let sink = lab.spawn(
        server,
        &sink_name,
        "python3",
        &["-c", TCP_SINK_PY, server_ip, &port_s, &t_s],
    )?;
    wait::until(
        &format!("{sink_name} to listen"),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            if lab.proc(sink).log().contains("listening") {
                return Poll::Ready(());
            }
            match lab.exited_error(sink, "the TCP sink to listen") {
                Some(e) => Poll::Fail(e),
                None => Poll::Pending("no `listening` line yet".into()),
            }
        },
    )?;
    let line = format!(
        "ip netns exec {} python3 -c <tcp source> {server_ip} {port} {bytes}",
        lab.ns(client)?
    );
    let out = lab.exec(
        client,
        "python3",
        &["-c", TCP_SOURCE_PY, server_ip, &port_s, &size_s],
    )?;
    let src = cmd::checked(&line, out).map_err(|e| {
        let sink_log = lab.proc(sink).log();
        LabError::Parse {
            cmd: line.clone(),
            detail: e.to_string(),
            output: format!("sink log:\n{sink_log}"),
        }
    })?;
    lab.proc(sink).wait(limit)?;
    let sink_log = lab.proc(sink).log();

    let bad = |what: &str, output: &str| LabError::Parse {
        cmd: line.clone(),
        detail: what.to_string(),
        output: output.to_string(),
    };
    let s: Vec<&str> = src.split_whitespace().collect();
    let [sent, sent_sha, echoed] = s[..] else {
        return Err(bad("source: expected `<bytes> <sha256> <sha256>`", &src));
    };
    let last = sink_log.lines().last().unwrap_or("");
    let r: Vec<&str> = last.split_whitespace().collect();
    let [received, received_sha] = r[..] else {
        return Err(bad(
            "sink: expected `<bytes> <sha256>` as last line",
            &sink_log,
        ));
    };
    Ok(Transfer {
        sent: sent.parse().map_err(|_| bad("source byte count", &src))?,
        sent_sha256: sent_sha.to_string(),
        received: received
            .parse()
            .map_err(|_| bad("sink byte count", &sink_log))?,
        received_sha256: received_sha.to_string(),
        echoed_sha256: echoed.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_parses_iputils_output() {
        let out = "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.\n\
                   64 bytes from 10.0.2.2: icmp_seq=1 ttl=63 time=0.1 ms\n\n\
                   --- 10.0.2.2 ping statistics ---\n\
                   3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms\n";
        assert_eq!(
            ping_summary(out),
            Some(PingSummary {
                transmitted: 3,
                received: 2
            })
        );
        let err = "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 4005ms";
        assert_eq!(ping_summary(err).unwrap().received, 0);
        assert_eq!(ping_summary("nothing"), None);
    }

    #[test]
    fn traceroute_hops_from_icmp_and_udp_output() {
        let out = "traceroute to 10.0.2.2 (10.0.2.2), 5 hops max, 60 byte packets\n \
                   1  10.0.1.1  0.310 ms  0.180 ms  0.170 ms\n \
                   2  10.0.2.2  0.420 ms *  0.390 ms\n \
                   3  * * *\n";
        let hops = traceroute_hops(out);
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].ttl, 1);
        assert_eq!(hops[0].addrs, [Ipv4Addr::new(10, 0, 1, 1)]);
        assert_eq!(hops[1].addrs, [Ipv4Addr::new(10, 0, 2, 2)]);
        assert!(hops[2].addrs.is_empty());
        let mixed = " 1  10.0.1.1  0.3 ms  10.0.9.1  0.2 ms  10.0.1.1  0.2 ms\n";
        assert_eq!(traceroute_hops(mixed)[0].addrs.len(), 2);
    }
}
