//! Checks shared by the topology tests: each runs against the h1 — r1 — h2 topology of
//! [`RouterLab`], whatever does the routing in r1 (aegis-dataplane in `router.rs`, the Linux
//! kernel in `kernel_router.rs`, which proves the checks themselves).
#![allow(dead_code)] // each test binary uses a different subset

use std::fmt::Display;
use std::net::Ipv4Addr;
use std::time::Duration;

use aegis_lab::{cmd, env, probe, Bins, Lab, RouterLab};

/// Tools the topology tests run inside the namespaces.
pub const TOOLS: &[&str] = &["ping", "traceroute", "ethtool", "python3", "sysctl"];

/// h3's subnet (behind h2) for the run-time route test.
pub const H3_NET: &str = "10.0.3.0/24";
/// h3's address.
pub const H3_IP: &str = "10.0.3.2";

pub trait OrPanic<T> {
    /// Unwraps with the error's `Display` (multi-line diagnostics) rather than `Debug`.
    fn or_panic(self, what: &str) -> T;
}

impl<T, E: Display> OrPanic<T> for Result<T, E> {
    fn or_panic(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// The Aegis binaries, when this machine can run a lab with `tools` and the release
/// dataplane and aegisctl are built; otherwise `None` after a loud skip (a failure under
/// CI=true).
pub fn ready_bins(test: &str, tools: &[&str]) -> Option<Bins> {
    if !env::lab_ready(test, tools) {
        return None;
    }
    let bins = Bins::locate();
    if let Err(e) = bins.dataplane().and_then(|_| bins.aegisctl()) {
        env::skip_or_fail(test, &e.to_string());
        return None;
    }
    Some(bins)
}

pub fn stdout(o: &std::process::Output) -> String {
    cmd::lossy(&o.stdout)
}

/// h1 -> h2 and h2 -> h1: 5 of 5 echo replies, TTL decremented exactly once.
pub fn ping_both_ways(lab: &Lab) {
    for (from, to) in [
        (RouterLab::H1, RouterLab::H2_IP),
        (RouterLab::H2, RouterLab::H1_IP),
    ] {
        let out = lab.ping(from, to, 5).or_panic("ping");
        let text = stdout(&out);
        let s = probe::ping_summary(&text).unwrap_or_else(|| panic!("no summary:\n{text}"));
        assert_eq!(
            (s.transmitted, s.received),
            (5, 5),
            "{from} -> {to}:\n{text}"
        );
        // The far host answers with TTL 64; one router hop on the way back makes it 63.
        assert!(
            text.contains("ttl=63"),
            "TTL not decremented exactly once:\n{text}"
        );
    }
}

/// The router answers echo requests to both of its addresses.
pub fn router_answers_ping(lab: &Lab) {
    for addr in [RouterLab::R1_H1_IP, RouterLab::R1_H2_IP] {
        let out = lab.ping(RouterLab::H1, addr, 3).or_panic("ping router");
        let text = stdout(&out);
        assert_eq!(
            probe::ping_summary(&text).map(|s| s.received),
            Some(3),
            "h1 -> {addr}:\n{text}"
        );
    }
}

/// 4 MiB over TCP h1 -> h2, SHA-256 equal at both ends.
pub fn tcp_transfer_4mib(lab: &mut Lab) {
    let size = 4 << 20;
    let t = probe::tcp_transfer(
        lab,
        RouterLab::H2,
        RouterLab::H2_IP,
        5001,
        RouterLab::H1,
        size,
        Duration::from_secs(90),
    )
    .or_panic("TCP transfer h1 -> h2");
    assert_eq!(t.sent, size);
    assert_eq!(t.received, size, "bytes lost or duplicated");
    assert_eq!(t.received_sha256, t.sent_sha256, "payload corrupted");
    assert_eq!(
        t.echoed_sha256, t.sent_sha256,
        "digest did not come back intact"
    );
}

/// ICMP and UDP traceroute h1 -> h2: hop 1 is the router (10.0.1.1), hop 2 is h2, and the
/// trace ends there.
pub fn traceroute_two_hops(lab: &Lab) {
    let r1: Ipv4Addr = RouterLab::R1_H1_IP.parse().unwrap();
    let h2: Ipv4Addr = RouterLab::H2_IP.parse().unwrap();
    for (mode, extra) in [("ICMP", &["-I"][..]), ("UDP", &[][..])] {
        let mut args = vec!["-n", "-q", "3", "-w", "2", "-m", "5"];
        args.extend_from_slice(extra);
        args.push(RouterLab::H2_IP);
        let out = lab
            .exec_ok(RouterLab::H1, "traceroute", &args)
            .or_panic("traceroute");
        let hops = probe::traceroute_hops(&out);
        assert_eq!(
            hops.len(),
            2,
            "{mode} traceroute should end at hop 2:\n{out}"
        );
        assert_eq!(hops[0].addrs, [r1], "{mode} hop 1:\n{out}");
        assert_eq!(hops[1].addrs, [h2], "{mode} hop 2:\n{out}");
    }
}

/// `count` pings from h1 to `dst` fail with ICMP destination unreachable sent by the router.
pub fn unreachable_from_router(lab: &Lab, dst: &str, count: u32) {
    let out = lab.ping(RouterLab::H1, dst, count).or_panic("ping");
    let text = stdout(&out);
    assert!(!out.status.success(), "{dst} must not answer:\n{text}");
    let from_router = format!("From {}", RouterLab::R1_H1_IP);
    assert!(
        text.contains(&from_router) && text.contains("Unreachable"),
        "expected ICMP destination unreachable from the router:\n{text}"
    );
}

/// Adds h3 (10.0.3.2/24) behind h2 (10.0.3.1/24 on h2's eth1, forwarding on).
pub fn add_h3_behind_h2(lab: &mut Lab) {
    lab.host("h3").or_panic("h3");
    lab.link("h2", "eth1", "h3", "eth0").or_panic("link h2-h3");
    lab.addr("h2", "eth1", "10.0.3.1/24").or_panic("addr");
    lab.addr("h3", "eth0", "10.0.3.2/24").or_panic("addr");
    lab.default_route("h3", "10.0.3.1").or_panic("route");
    lab.tx_checksum_off("h3", "eth0").or_panic("ethtool");
    lab.forwarding("h2", true).or_panic("forwarding");
    lab.wait_ping("h2", H3_IP, Duration::from_secs(10))
        .or_panic("h2 reaches h3");
}

/// A route to h3's subnet via h2, added and removed at run time with `add` and `del`, takes
/// effect at once, while a 100 packets/s ping flow h1 -> h2 running across all the changes
/// loses nothing.
pub fn runtime_route_change(lab: &mut Lab, add: &mut dyn FnMut(), del: &mut dyn FnMut()) {
    add_h3_behind_h2(lab);
    let out = lab.ping(RouterLab::H1, H3_IP, 1).or_panic("ping h3");
    assert!(
        !out.status.success(),
        "h3 reachable before the route exists:\n{}",
        stdout(&out)
    );

    let count = 600u32;
    let count_s = count.to_string();
    let flow = lab
        .spawn(
            RouterLab::H1,
            "flow",
            "ping",
            &[
                "-n",
                "-i",
                "0.01",
                "-W",
                "2",
                "-c",
                &count_s,
                RouterLab::H2_IP,
            ],
        )
        .or_panic("start flow");
    std::thread::sleep(Duration::from_millis(500));

    add();
    lab.wait_ping(RouterLab::H1, H3_IP, Duration::from_secs(5))
        .or_panic("h1 reaches h3 after route add");
    lab.wait_ping("h3", RouterLab::H1_IP, Duration::from_secs(5))
        .or_panic("h3 reaches h1 after route add");

    del();
    let out = lab.ping(RouterLab::H1, H3_IP, 1).or_panic("ping h3");
    assert!(
        !out.status.success(),
        "h3 still reachable after route del:\n{}",
        stdout(&out)
    );
    add();
    lab.wait_ping(RouterLab::H1, H3_IP, Duration::from_secs(5))
        .or_panic("h1 reaches h3 after re-add");

    let status = lab
        .proc(flow)
        .wait(Duration::from_secs(60))
        .or_panic("flow to finish");
    let log = lab.proc(flow).log();
    let s = probe::ping_summary(&log).unwrap_or_else(|| panic!("no flow summary:\n{log}"));
    assert_eq!(
        (s.transmitted, s.received),
        (count, count),
        "the h1 -> h2 flow lost packets during route changes ({}):\n{}",
        cmd::status_text(status),
        log.lines().rev().take(4).collect::<Vec<_>>().join("\n")
    );
}

/// `tshark -r FILE -T fields -e F...`, one row per packet (first occurrence of each field:
/// the outer header, not one an ICMP error quotes).
pub fn tshark_fields(file: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().or_panic("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// An `aegisctl trace -o json` verdict: (outcome, host, reason).
pub fn verdict(t: &serde_json::Value) -> (&str, &str, &str) {
    let v = &t["verdict"];
    (
        v["outcome"].as_str().unwrap_or(""),
        v["host"].as_str().unwrap_or(""),
        v["reason"].as_str().unwrap_or(""),
    )
}

/// The hosts of an `aegisctl trace -o json` with hops, in path order.
pub fn hosts(t: &serde_json::Value) -> Vec<String> {
    t["hosts"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| h["host"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The (node, action) pairs of `host`'s hops in an `aegisctl trace -o json`.
pub fn hops(t: &serde_json::Value, host: &str) -> Vec<(String, String)> {
    t["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["host"] == host))
        .and_then(|h| h["hops"].as_array())
        .map(|hs| {
            hs.iter()
                .map(|x| {
                    (
                        x["node"].as_str().unwrap_or("").to_owned(),
                        x["action"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// True if `host` recorded a hop at `node` with `action`.
pub fn has_hop(t: &serde_json::Value, host: &str, node: &str, action: &str) -> bool {
    hops(t, host).iter().any(|(n, a)| n == node && a == action)
}
