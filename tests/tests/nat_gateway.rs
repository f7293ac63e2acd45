//! The dataplane as a NAT gateway between an inside host and an outside one (host.toml
//! `[nat]` on the h1 — r1 — h2 lab, veth-h2 being the outside port):
//!
//! - source NAT: h2 sees h1's connections come from the NAT address; ping, a 4 MiB TCP
//!   transfer and UDP all work through it; an ICMP port unreachable from h2 reaches h1's
//!   socket (the error is translated back);
//! - a floating IP: h2 reaches h1 at its public address and sees h1's own connections come
//!   from it, ports unchanged.
//!
//! Needs root and the release binaries; skips loudly without them, fails under CI=true.

mod common;

use std::time::Duration;

use aegis_lab::hosttoml::HostConfig;
use aegis_lab::{env, probe, streams, Bins, RouterLab};
use common::OrPanic;

/// Connects to ADDR PORT, prints `local IP PORT` and what came back.
const PEER_CLIENT_PY: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
l = c.getsockname()
c.sendall(b"through the gateway")
print("local", l[0], l[1], c.recv(100).decode(), flush=True)
"#;

/// Sends one UDP datagram to a closed port and reports whether the ICMP error came back.
const UDP_REFUSED_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], 9))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"#;

fn gateway(test: &str, prefix: &str, addresses: &[&str], nat: &str) -> Option<RouterLab> {
    if !env::lab_ready(test, common::TOOLS) {
        return None;
    }
    let bins = Bins::locate();
    if let Err(e) = bins.dataplane().and_then(|_| bins.aegisctl()) {
        env::skip_or_fail(test, &e.to_string());
        return None;
    }
    let extra: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let edit = move |c: &mut HostConfig| c.ports[1].addresses.extend(extra.iter().cloned());
    let rl = RouterLab::start_custom(prefix, bins, &|_| Vec::new(), &edit, nat)
        .or_panic("start the gateway lab");
    rl.lab
        .wait_ping(RouterLab::H1, RouterLab::H2_IP, Duration::from_secs(20))
        .or_panic("h1 reaches h2 through the gateway");
    Some(rl)
}

/// Runs the peer server on `server` and the client on `client`; returns (what the server
/// saw as the peer, what the client saw as its own address).
fn peer_seen(
    rl: &mut RouterLab,
    server: &str,
    listen_ip: &str,
    client: &str,
    connect_ip: &str,
    port: u16,
) -> ((String, u16), (String, u16)) {
    let p = port.to_string();
    let name = format!("peer-server-{port}");
    let srv = streams::echo_server(&mut rl.lab, server, &name, listen_ip, &p)
        .or_panic("start the peer server");
    let out = rl
        .lab
        .exec_ok(client, "python3", &["-c", PEER_CLIENT_PY, connect_ip, &p])
        .or_panic("client connects");
    rl.lab
        .proc(srv)
        .wait(Duration::from_secs(10))
        .or_panic("server done");
    let log = rl.lab.proc(srv).log();
    let field = |text: &str, tag: &str| -> (String, u16) {
        let line = text
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag:?} line in {text:?}"));
        let w: Vec<&str> = line.split_whitespace().collect();
        (w[1].to_string(), w[2].parse().unwrap())
    };
    assert!(out.contains("through the gateway"), "echo came back: {out}");
    (field(&log, "peer"), field(&out, "local"))
}

fn no_nat_drops(rl: &RouterLab) {
    let d = rl.drop_counters().or_panic("show errors");
    for r in [
        "nat_full",
        "nat_no_port",
        "nat_untranslatable",
        "nat_truncated",
    ] {
        assert_eq!(d.get(r).copied().unwrap_or(0), 0, "{r}: {d:?}");
    }
}

#[test]
fn source_nat_hides_the_inside_and_carries_tcp_udp_icmp_and_their_errors() {
    let nat = "\n[nat]\noutside_port = \"veth-h2\"\n\n[[nat.snat]]\nsource = \"10.0.1.0/24\"\naddress = \"10.0.2.100\"\n";
    let Some(mut rl) = gateway("source_nat", "nats", &["10.0.2.100/24"], nat) else {
        return;
    };
    // ICMP echo through the NAT.
    let ping = rl
        .lab
        .ping(RouterLab::H1, RouterLab::H2_IP, 5)
        .or_panic("ping");
    assert!(ping.status.success(), "{}", common::stdout(&ping));
    // h2 sees the NAT address, from a port of the dataplane's range.
    let ((peer_ip, peer_port), (local_ip, _)) = peer_seen(
        &mut rl,
        RouterLab::H2,
        RouterLab::H2_IP,
        RouterLab::H1,
        RouterLab::H2_IP,
        7101,
    );
    assert_eq!(peer_ip, "10.0.2.100", "h2 sees the NAT address");
    assert!(peer_port >= 1024);
    assert_eq!(local_ip, RouterLab::H1_IP, "h1 knows nothing of it");
    // A 4 MiB transfer arrives intact through the translation.
    let t = probe::tcp_transfer(
        &mut rl.lab,
        RouterLab::H2,
        RouterLab::H2_IP,
        7102,
        RouterLab::H1,
        4 << 20,
        Duration::from_secs(60),
    )
    .or_panic("TCP transfer through source NAT");
    assert_eq!(t.received, 4 << 20);
    assert_eq!(t.sent_sha256, t.received_sha256);
    // UDP to a closed port: h2's port unreachable is translated back to h1's socket.
    let out = rl
        .lab
        .exec_ok(
            RouterLab::H1,
            "python3",
            &["-c", UDP_REFUSED_PY, RouterLab::H2_IP],
        )
        .or_panic("udp probe");
    assert_eq!(out.trim(), "refused", "the ICMP error reached h1's socket");
    // The gateway still answers ping on its NAT address.
    let own = rl.lab.ping(RouterLab::H2, "10.0.2.100", 2).or_panic("ping");
    assert!(own.status.success(), "{}", common::stdout(&own));
    no_nat_drops(&rl);
    rl.check_alive("source NAT").or_panic("dataplane");
}

#[test]
fn a_floating_ip_is_reachable_from_outside_and_is_the_vms_public_source() {
    let nat = "\n[nat]\noutside_port = \"veth-h2\"\n\n[[nat.floating_ip]]\ninside = \"10.0.1.2\"\noutside = \"10.0.2.101\"\n";
    let Some(mut rl) = gateway("floating_ip", "natf", &["10.0.2.101/24"], nat) else {
        return;
    };
    // Inbound: h2 connects to the floating IP and reaches h1, which sees h2 as it is.
    let ((peer_ip, _), (local_ip, _)) = peer_seen(
        &mut rl,
        RouterLab::H1,
        "0.0.0.0",
        RouterLab::H2,
        "10.0.2.101",
        7201,
    );
    assert_eq!(peer_ip, RouterLab::H2_IP);
    assert_eq!(local_ip, RouterLab::H2_IP);
    // Outbound: h1's connections leave from the floating IP with their own port.
    let ((peer_ip, peer_port), (_, local_port)) = peer_seen(
        &mut rl,
        RouterLab::H2,
        RouterLab::H2_IP,
        RouterLab::H1,
        RouterLab::H2_IP,
        7202,
    );
    assert_eq!(peer_ip, "10.0.2.101");
    assert_eq!(peer_port, local_port, "1:1 NAT keeps ports");
    let ping = rl.lab.ping(RouterLab::H2, "10.0.2.101", 3).or_panic("ping");
    assert!(ping.status.success(), "{}", common::stdout(&ping));
    no_nat_drops(&rl);
    rl.check_alive("floating IP").or_panic("dataplane");
}
