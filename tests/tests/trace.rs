//! Packet-trace probes in the east-west lab (`aegisctl trace`, docs/trace.md): a probe sent
//! as a VM would send it, traced on every host it crosses, judged, and compared with the
//! desired state. One lab for all of it (a lab takes long to build):
//!
//! 1. b1 (c1) → b2 (c2): every hop on both hosts, delivered on c2 at b2's port; b2's
//!    namespace never sees the probe (tshark there captures nothing);
//! 2. b1 → b3 (another subnet, same host): delivered, the VPC route named;
//! 3. each drop cause with its host and reason: security-group deny (with the rule id), no
//!    route, TTL expiry, MTU exceeded, spoofed source, destination port down, unresolved
//!    neighbour (a port on a host whose underlay address nobody answers);
//! 4. a VM that sends a packet with the probe mark gets it dropped (`trace_forged`);
//! 5. a host cut off from the control plane, after the desired state changed, is named as
//!    stale by the expected-vs-actual comparison.
//!
//! Needs root, tshark, nft and the release binaries; skips loudly without them and fails
//! under CI=true.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aegis_lab::eastwest::{self, EastWestLab};
use aegis_lab::frames;
use common::{has_hop, hosts, verdict, OrPanic};
use serde_json::Value;

/// Tools the test runs inside the namespaces.
const TOOLS: &[&str] = &["ping", "ethtool", "python3", "sysctl", "tshark", "nft"];

fn ip(name: &str) -> &'static str {
    eastwest::vm(name).or_panic("vm").ip
}

/// `aegisctl trace --from FROM --dst DST ARGS -o json`.
fn trace(ew: &EastWestLab, from: &str, dst: &str, args: &[&str]) -> Value {
    let mut argv = vec!["trace", "--from", from, "--dst", dst];
    argv.extend_from_slice(args);
    ew.cp_json(&argv).or_panic("aegisctl trace")
}

/// Asserts the probe was dropped on `host` for `reason`.
fn assert_dropped(t: &Value, host: &str, reason: &str) {
    assert_eq!(verdict(t), ("dropped", host, reason), "trace: {t:#}");
}

#[test]
fn probes_find_where_and_why_packets_die() {
    let test = "trace";
    let Some(bins) = common::ready_bins(test, TOOLS) else {
        return;
    };
    if let Err(e) = bins.controlplane() {
        aegis_lab::env::skip_or_fail(test, &e.to_string());
        return;
    }
    let mut ew = EastWestLab::start_with("ewtrace", bins).or_panic("start the east-west lab");
    let b1 = eastwest::vm("b1").or_panic("b1");

    // 1. Across hosts, with a capture in b2's namespace that must stay empty.
    let sniff = ew
        .lab
        .spawn(
            "b2",
            "sniff-b2",
            "tshark",
            &[
                "-i",
                "eth0",
                "-n",
                "-a",
                "duration:6",
                "-f",
                "icmp or tcp or udp",
            ],
        )
        .or_panic("tshark in b2");
    std::thread::sleep(Duration::from_secs(2));
    let t = trace(&ew, "b1", ip("b2"), &[]);
    assert_eq!(verdict(&t).0, "delivered", "{t:#}");
    assert_eq!(t["verdict"]["host"], "c2", "{t:#}");
    assert_eq!(
        t["verdict"]["port"],
        eastwest::vm("b2").or_panic("b2").device()
    );
    assert_eq!(hosts(&t), ["c1", "c2"], "{t:#}");
    for (host, node, action) in [
        ("c1", "ethernet-input", "injected"),
        ("c1", "vm-input", "forwarded"),
        ("c1", "security-group", "forwarded"),
        ("c1", "overlay-output", "forwarded"),
        ("c2", "geneve-input", "received"),
        ("c2", "security-group", "forwarded"),
        ("c2", "overlay-output", "delivered"),
    ] {
        assert!(
            has_hop(&t, host, node, action),
            "{host} {node} {action}: {t:#}"
        );
    }
    assert!(
        has_hop(&t, "c1", "ip4-lookup", "transmitted") || has_hop(&t, "c1", "ip4-lookup", "held"),
        "c1 sends the probe on the underlay: {t:#}"
    );
    assert_eq!(t["expected"]["outcome"], "deliver", "{t:#}");
    assert_eq!(t["expected"]["host"], "c2", "{t:#}");
    assert!(
        t["findings"].as_array().is_none_or(|f| f.is_empty()),
        "{t:#}"
    );
    ew.lab
        .proc(sniff)
        .wait(Duration::from_secs(10))
        .or_panic("tshark ends");
    let seen = ew.lab.proc(sniff).log();
    assert!(
        seen.contains("0 packets captured") || !seen.contains("AEGIS"),
        "b2's namespace saw the probe:\n{seen}"
    );
    assert!(
        seen.contains("0 packets captured"),
        "b2's namespace saw traffic during the probe:\n{seen}"
    );
    let text = ew
        .cp(&["trace", "--from", "b1", "--dst", ip("b2")])
        .or_panic("trace table");
    assert!(text.contains("verdict: DELIVERED on host c2"), "{text}");
    assert!(
        text.contains("host c1") && text.contains("host c2"),
        "{text}"
    );
    let dot = ew
        .cp(&["trace", "--from", "b1", "--dst", ip("b2"), "-o", "dot"])
        .or_panic("trace dot");
    assert!(
        dot.starts_with("digraph") && dot.contains("cluster_1"),
        "{dot}"
    );

    // 2. Routed on the source host: the VPC route decides.
    let t = trace(&ew, "b1", ip("b3"), &[]);
    assert_eq!(verdict(&t).0, "delivered", "{t:#}");
    assert_eq!(hosts(&t), ["c1"], "{t:#}");
    let route = t["hosts"][0]["hops"]
        .as_array()
        .and_then(|hs| hs.iter().find(|x| x["node"] == "vpc-route"))
        .cloned()
        .unwrap_or_default();
    assert!(
        route["detail"]
            .as_str()
            .is_some_and(|d| d.contains("10.1.2.14/32") || d.contains("10.1.2.13/32")),
        "{route}"
    );

    // 3. Drop causes.
    // No route (blue has no default route).
    let t = trace(&ew, "b1", "192.0.2.1", &[]);
    assert_dropped(&t, "c1", "vpc_no_route");
    assert_eq!(t["expected"]["outcome"], "no_route", "{t:#}");
    assert!(
        t["findings"].as_array().is_none_or(|f| f.is_empty()),
        "{t:#}"
    );
    // TTL 1 to another subnet: the router answers time exceeded.
    let t = trace(&ew, "b1", ip("b3"), &["--ttl", "1"]);
    assert_dropped(&t, "c1", "ip4_ttl_expired");
    // Larger than the overlay MTU, with DF: fragmentation needed.
    let t = trace(&ew, "b1", ip("b2"), &["--size", "1460"]);
    assert_dropped(&t, "c1", "ip4_mtu_exceeded");
    assert!(
        t["verdict"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MTU 1450")),
        "{t:#}"
    );
    // A source address that is not the port's.
    let t = trace(&ew, "b1", ip("b2"), &["--src", "10.1.1.99"]);
    assert_dropped(&t, "c1", "port_spoofed_ip");
    // A security-group deny on the destination host, with its rule.
    ew.create_group(
        "sg-web",
        &[
            "id=no-http,dir=ingress,proto=tcp,ports=80,remote=0.0.0.0/0,prio=5,action=deny",
            eastwest::DEFAULT_GROUP_RULE,
        ],
    )
    .or_panic("sg-web");
    ew.set_port_groups("b2", &["sg-web", eastwest::DEFAULT_GROUP])
        .or_panic("b2 groups");
    ew.wait_converged(eastwest::CONVERGE).or_panic("converge");
    let t = trace(&ew, "b1", ip("b2"), &["--proto", "tcp", "--dport", "80"]);
    assert_dropped(&t, "c2", "security_group_deny");
    assert_eq!(t["verdict"]["rule"], "sg-web/no-http", "{t:#}");
    let t = trace(&ew, "b1", ip("b2"), &["--proto", "udp", "--dport", "53"]);
    assert_eq!(verdict(&t).0, "delivered", "udp is allowed: {t:#}");
    // The destination VM's port is down (on c3).
    let b4_port = eastwest::vm("b4").or_panic("b4").device();
    let c3 = ew.dp("c3").or_panic("c3 ctl");
    c3.text(&["port", "down", &b4_port]).or_panic("port down");
    let t = trace(&ew, "b1", ip("b4"), &[]);
    assert_dropped(&t, "c3", "port_down");
    assert_eq!(hosts(&t), ["c1", "c3"], "{t:#}");
    c3.text(&["port", "up", &b4_port]).or_panic("port up");
    // A port on a host whose underlay address nobody answers: held, then dropped.
    ew.cp(&[
        "host",
        "create",
        "c9",
        "--role",
        "compute",
        "--underlay",
        "10.88.0.99",
        "--address",
        "ul0=10.88.0.99/24",
    ])
    .or_panic("host c9");
    ew.cp(&[
        "port",
        "create",
        "b9",
        "--vpc",
        "blue",
        "--subnet",
        "blue-a",
        "--mac",
        "02:00:00:00:09:09",
        "--ip",
        "10.1.1.99",
        "--host",
        "c9",
        "--device",
        "vm-b9",
        "--security-group",
        eastwest::DEFAULT_GROUP,
    ])
    .or_panic("port b9");
    ew.wait_converged(eastwest::CONVERGE).or_panic("converge");
    let t = trace(&ew, "b1", "10.1.1.99", &["--wait-ms", "6000"]);
    assert_dropped(&t, "c1", "neighbour_unresolved");
    assert!(
        has_hop(&t, "c1", "ip4-lookup", "held") || has_hop(&t, "c1", "overlay-output", "forwarded"),
        "{t:#}"
    );

    // 4. A VM forging the probe mark.
    let before = ew.dp("c1").or_panic("c1").drop_counters().or_panic("drops");
    let was = before.get("trace_forged").copied().unwrap_or(0);
    let mut payload = b"AEGIStrc".to_vec();
    payload.extend_from_slice(&0x8000_0000_0000_0042u64.to_be_bytes());
    let ipv4 = frames::ipv4(
        b1.ip.parse::<Ipv4Addr>().or_panic("ip"),
        ip("b2").parse::<Ipv4Addr>().or_panic("ip"),
        64,
        1,
        &frames::icmp_echo(7, 1, &payload),
    );
    let frame = frames::ethernet(
        frames::parse_mac(eastwest::vm("b2").or_panic("b2").mac).or_panic("mac"),
        frames::parse_mac(b1.mac).or_panic("mac"),
        0x0800,
        &ipv4,
    );
    ew.send_frames("b1", &[frame.clone(), frame])
        .or_panic("send forged");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ew.dp("c1").or_panic("c1").drop_counters().or_panic("drops");
        if now.get("trace_forged").copied().unwrap_or(0) >= was + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trace_forged not counted: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 5. c3 stops hearing the control plane; the desired state moves on.
    ew.lab
        .exec_ok(
            "c3",
            "nft",
            &[
                "add table inet aegis_stale; add chain inet aegis_stale out { type filter hook output priority 0; }; add rule inet aegis_stale out ip daddr 10.99.0.1 tcp dport 7400 drop; add chain inet aegis_stale in { type filter hook input priority 0; }; add rule inet aegis_stale in ip saddr 10.99.0.1 tcp sport 7400 drop",
            ],
        )
        .or_panic("cut c3 off");
    let rules = ew
        .lab
        .exec_ok("c3", "nft", &["list", "ruleset"])
        .or_panic("nft list");
    assert!(rules.contains("dport 7400 drop"), "{rules}");
    ew.create_group(
        "sg-quiet",
        &["id=no-icmp,dir=ingress,proto=icmp,remote=0.0.0.0/0,prio=5,action=deny"],
    )
    .or_panic("sg-quiet");
    ew.set_port_groups("b4", &["sg-quiet"])
        .or_panic("b4 groups");
    std::thread::sleep(Duration::from_secs(2));
    let t = trace(&ew, "b1", ip("b4"), &[]);
    let findings: Vec<&str> = t["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let desired = t["desired_revision"].as_u64().unwrap_or(0);
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("host c3 applied revision")
                && f.contains(&format!("desired state is at {desired}"))),
        "c3 not named stale: {t:#}"
    );
    assert!(
        !findings.iter().any(|f| f.starts_with("host c1 ")),
        "c1 is current: {t:#}"
    );
    // c3 still applies its old rules: the probe is delivered (the new ones would deny).
    assert_eq!(verdict(&t), ("delivered", "c3", ""), "{t:#}");
}
