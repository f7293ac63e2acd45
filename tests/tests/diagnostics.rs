//! Diagnostics through the control plane, in the east-west lab ([`EastWestLab`]: each
//! dataplane serves `DataplaneDiagnostics` on its management address, 10.99.0.1N:7401, and
//! reports it in its heartbeats):
//!
//! 1. `aegisctl host list -o json` shows each host's diagnostics address;
//! 2. `aegisctl drops -o json`: spoofed-source frames from b1 show as `port_spoofed_ip` on
//!    c1 with the right count, ranked;
//! 3. `aegisctl capture --host c2 --port vm-b2 --filter icmp -c 6 -w F` while b1 pings b2:
//!    tshark reads only ICMP, on the interface named `c2/vm-b2`; at the same time
//!    `capture --host c2 --node geneve-input --node security-group -f icmp -o json` sees the
//!    pings at `security-group` only (decapsulated; at `geneve-input` they are still Geneve
//!    packets, which the filter refuses), requests from the underlay port, replies from
//!    b2's;
//! 4. `aegisctl trace watch --host c2 --filter 'tcp port 80'` while b1 connects to b2:80
//!    and pings it: only the TCP packets are traced, the SYN from its Geneve inner frame on
//!    (geneve-input) to b2's port, b2's reset from b2's port to the underlay; an unknown
//!    port is refused;
//! 5. a security-group deny shows in `drops` with its rule id, and in a watch on c2 as a
//!    path dropped at `security-group` with the rule;
//! 6. a host whose dataplane is gone is listed as unreachable, the others still answer.
//!
//! One lab for all of it (a lab takes long to build). Needs root, tshark and the release
//! binaries; skips loudly without them and fails under CI=true.

mod common;

use std::time::{Duration, Instant};

use aegis_lab::eastwest::{self, Connect, EastWestLab, CP_ADDR, DIAG_PORT, FABRIC, HOSTS};
use common::OrPanic;
use serde_json::Value;

/// Tools the tests run inside the namespaces.
const TOOLS: &[&str] = &["ping", "ethtool", "python3", "sysctl", "tshark"];

/// A started east-west lab, or `None` when the test must skip.
fn eastwest(test: &str, prefix: &str) -> Option<EastWestLab> {
    let bins = common::ready_bins(test, TOOLS)?;
    if let Err(e) = bins.controlplane() {
        aegis_lab::env::skip_or_fail(test, &e.to_string());
        return None;
    }
    Some(EastWestLab::start_with(prefix, bins).or_panic("start the east-west lab"))
}

fn ip(name: &str) -> &'static str {
    eastwest::vm(name).or_panic("vm").ip
}

/// `aegisctl drops [ARGS] -o json`.
fn drops(ew: &EastWestLab, args: &[&str]) -> Value {
    let mut argv = vec!["drops"];
    argv.extend_from_slice(args);
    ew.cp_json(&argv).or_panic("aegisctl drops")
}

/// The count of `reason` on `host` in a `drops` answer (0 when not listed).
fn count(v: &Value, host: &str, reason: &str) -> u64 {
    entry(v, host, reason).map_or(0, |d| d["count"].as_u64().unwrap_or(0))
}

fn entry<'a>(v: &'a Value, host: &str, reason: &str) -> Option<&'a Value> {
    v["drops"]
        .as_array()?
        .iter()
        .find(|d| d["host"] == host && d["reason"] == reason)
}

/// Polls `drops` until `reason` on `host` reaches `at_least` (or 10 s pass).
fn wait_count(ew: &EastWestLab, host: &str, reason: &str, at_least: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = drops(ew, &[]);
        if count(&v, host, reason) >= at_least || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Counts are non-increasing down the list and never zero.
fn assert_ranked(v: &Value) {
    let counts: Vec<u64> = v["drops"]
        .as_array()
        .or_panic_opt("drops list")
        .iter()
        .map(|d| d["count"].as_u64().unwrap_or(0))
        .collect();
    assert!(counts.iter().all(|c| *c > 0), "zero counters shown: {v}");
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "not ranked by count: {counts:?}"
    );
}

trait OrPanicOpt<T> {
    fn or_panic_opt(self, what: &str) -> T;
}

impl<T> OrPanicOpt<T> for Option<T> {
    fn or_panic_opt(self, what: &str) -> T {
        self.unwrap_or_else(|| panic!("missing: {what}"))
    }
}

/// Runs `aegisctl trace watch ARGS -o json` (or as ARGS say: `-o table`) from the fabric, calling `traffic` until it
/// ends (30 s at most); returns the paths it printed and its log.
fn watch(
    ew: &mut EastWestLab,
    name: &str,
    args: &[&str],
    mut traffic: impl FnMut(&EastWestLab),
) -> (Vec<Value>, String) {
    let aegisctl = ew.bins.aegisctl().or_panic("aegisctl");
    let mut argv = vec!["--server", CP_ADDR, "trace", "watch"];
    argv.extend_from_slice(args);
    if !args.contains(&"table") {
        argv.extend_from_slice(&["-o", "json"]);
    }
    let id = ew
        .lab
        .spawn(FABRIC, name, &aegisctl.to_string_lossy(), &argv)
        .or_panic("start aegisctl trace watch");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ew.lab.proc(id).is_running() {
        assert!(
            Instant::now() < deadline,
            "trace watch still running after 30 s:\n{}",
            ew.lab.proc(id).log_tail(20)
        );
        traffic(ew);
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = ew.lab.proc(id);
    let status = p.exit_status().or_panic_opt("trace watch exit status");
    let log = p.log();
    assert!(
        status.success(),
        "aegisctl trace watch failed ({status}):\n{log}"
    );
    let paths = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).or_panic("a JSON path"))
        .collect();
    (paths, log)
}

/// The first hop of a watched path.
fn first_hop(p: &Value) -> &Value {
    &p["path"]["hops"][0]
}

#[test]
fn drops_and_captures_of_every_host_through_the_control_plane() {
    let Some(mut ew) = eastwest("diagnostics", "ewdiag") else {
        return;
    };

    // 1. Each dataplane reports where its diagnostics are.
    let hosts = ew.cp_json(&["host", "list"]).or_panic("host list");
    for h in HOSTS {
        let s = hosts["hosts"]
            .as_array()
            .or_panic_opt("hosts")
            .iter()
            .find(|s| s["name"] == h)
            .or_panic_opt("host in host list");
        let want = format!("{}:{DIAG_PORT}", eastwest::mgmt_ip(h).or_panic("ip"));
        assert_eq!(s["diag_address"], want.as_str(), "{h}: {s}");
    }
    let table = ew.cp(&["host", "list"]).or_panic("host list table");
    assert!(
        table.contains("DIAG") && table.contains(&format!("10.99.0.11:{DIAG_PORT}")),
        "{table}"
    );

    // 2. Spoofed source IPs from b1 (on c1): port_spoofed_ip on c1, 3 more.
    let b1 = eastwest::vm("b1").or_panic("b1");
    let before = drops(&ew, &["--host", b1.host]);
    assert_eq!(before["hosts"], serde_json::json!([b1.host]), "{before}");
    let was = count(&before, b1.host, "port_spoofed_ip");
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|seq| EastWestLab::echo_frame(b1.mac, "10.1.1.99", ip("b2"), seq).or_panic("frame"))
        .collect();
    ew.send_frames("b1", &frames)
        .or_panic("send spoofed frames");
    let after = wait_count(&ew, b1.host, "port_spoofed_ip", was + 3);
    assert_eq!(
        count(&after, b1.host, "port_spoofed_ip"),
        was + 3,
        "drops: {after}"
    );
    assert_ranked(&after);
    assert_eq!(after["hosts"], serde_json::json!(HOSTS), "{after}");
    assert!(
        after["unreachable"].as_array().is_none_or(|u| u.is_empty()),
        "{after}"
    );
    let text = ew.cp(&["drops", "--host", b1.host]).or_panic("drops table");
    assert!(
        text.lines()
            .any(|l| l.starts_with(b1.host) && l.contains("port_spoofed_ip")),
        "{text}"
    );

    // 3. A capture on c2's port of b2, from the fabric (not on c2), while b1 pings b2 —
    // before b2 gets a security group, which denies ICMP to it.
    let b2 = eastwest::vm("b2").or_panic("b2");
    let port = b2.device();
    let file = ew.lab.path("c2-icmp.pcapng");
    let file_arg = file.to_string_lossy().into_owned();
    let aegisctl = ew.bins.aegisctl().or_panic("aegisctl");
    let capture = ew
        .lab
        .spawn(
            FABRIC,
            "capture-c2",
            &aegisctl.to_string_lossy(),
            &[
                "--server", CP_ADDR, "capture", "--host", b2.host, "--port", &port, "--filter",
                "icmp", "-c", "6", "-w", &file_arg,
            ],
        )
        .or_panic("start aegisctl capture");
    let at_nodes = ew
        .lab
        .spawn(
            FABRIC,
            "capture-c2-nodes",
            &aegisctl.to_string_lossy(),
            &[
                "--server",
                CP_ADDR,
                "capture",
                "--host",
                b2.host,
                "--node",
                "geneve-input",
                "--node",
                "security-group",
                "--filter",
                "icmp",
                "-c",
                "4",
                "-o",
                "json",
            ],
        )
        .or_panic("start aegisctl capture --node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ew.lab.proc(capture).is_running() || ew.lab.proc(at_nodes).is_running() {
        assert!(
            Instant::now() < deadline,
            "captures still running after 30 s:\n{}\n---\n{}",
            ew.lab.proc(capture).log_tail(10),
            ew.lab.proc(at_nodes).log_tail(10)
        );
        // Non-ICMP traffic crosses the port too (a SYN, a reset): the filter keeps it out.
        let _ = ew.tcp_connect("b1", ip("b2"), 80, Duration::from_millis(200));
        let _ = ew.ping("b1", ip("b2"), 1);
        std::thread::sleep(Duration::from_millis(200));
    }
    let p = ew.lab.proc(capture);
    let status = p.exit_status().or_panic_opt("capture exit status");
    let log = p.log();
    assert!(
        status.success(),
        "aegisctl capture failed ({status}):\n{log}"
    );
    assert!(log.contains("6 packets captured on c2"), "{log}");
    let rows = common::tshark_fields(
        &file,
        &["frame.interface_name", "ip.proto", "frame.protocols"],
    );
    assert_eq!(rows.len(), 6, "tshark rows: {rows:?}");
    let iface = format!("{}/{port}", b2.host);
    for r in &rows {
        assert_eq!(r[0], iface, "interface name: {rows:?}");
        assert_eq!(r[1], "1", "only ICMP: {rows:?}");
        assert!(r[2].contains(":icmp"), "only ICMP: {rows:?}");
    }
    let p = ew.lab.proc(at_nodes);
    let status = p.exit_status().or_panic_opt("node capture exit status");
    let log = p.log();
    assert!(status.success(), "capture --node failed ({status}):\n{log}");
    let packets: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).or_panic("JSON line"))
        .collect();
    assert_eq!(packets.len(), 4, "{log}");
    let (b1_ip, b2_ip) = (ip("b1").to_string(), ip("b2").to_string());
    for p in &packets {
        assert_eq!(
            p["interface"],
            format!("{}/node:security-group", b2.host),
            "{p}"
        );
        assert_eq!(p["node"], "security-group", "{p}");
        let s = p["summary"].as_str().unwrap_or_default();
        let request = s.contains(&format!("{b1_ip} > {b2_ip}: ICMP echo request"));
        let reply = s.contains(&format!("{b2_ip} > {b1_ip}: ICMP echo reply"));
        assert!(request || reply, "the VMs' own packets: {p}");
        let rx = if request {
            eastwest::UNDERLAY_IF
        } else {
            &port
        };
        assert_eq!(p["rx_port"], rx, "{p}");
    }

    // 4. A trace watch on c2 for TCP port 80 while b1 connects to b2:80 (nothing listens:
    // b2 answers with a reset) and pings b2 (not matched).
    let b2_ip = ip("b2");
    let (paths, log) = watch(
        &mut ew,
        "watch-tcp-80",
        &["--host", b2.host, "--filter", "tcp port 80", "-c", "4"],
        |ew| {
            let _ = ew.tcp_connect("b1", b2_ip, 80, Duration::from_millis(200));
            let _ = ew.ping("b1", b2_ip, 1);
        },
    );
    assert_eq!(paths.len(), 4, "{log}");
    assert!(
        log.contains("4 paths;") && log.contains("ended: count"),
        "{log}"
    );
    for p in &paths {
        assert_eq!(p["host"], b2.host, "{p}");
        let summary = p["path"]["summary"].as_str().unwrap_or("");
        assert!(summary.contains(": TCP ["), "only TCP port 80: {p}");
        assert_eq!(p["path"]["verdict"], "transmitted", "{p}");
    }
    // The SYN, matched on the inner frame of its Geneve packet, leaves on b2's port.
    let syn = paths
        .iter()
        .find(|p| {
            first_hop(p)["node"] == "geneve-input"
                && p["path"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("[S]"))
        })
        .unwrap_or_else(|| panic!("no SYN from c1 over Geneve: {log}"));
    assert_eq!(first_hop(syn)["action"], "received", "{syn}");
    assert_eq!(first_hop(syn)["peer"], "10.88.0.11", "{syn}");
    assert_eq!(syn["path"]["port"], port.as_str(), "{syn}");
    let nodes: Vec<&str> = syn["path"]["hops"]
        .as_array()
        .or_panic_opt("hops")
        .iter()
        .filter_map(|h| h["node"].as_str())
        .collect();
    assert!(
        nodes.contains(&"security-group") && nodes.contains(&"overlay-output"),
        "{syn}"
    );
    // b2's reset, matched as it came in on b2's port, goes to the underlay.
    let rst = paths
        .iter()
        .find(|p| first_hop(p)["port"] == port.as_str())
        .unwrap_or_else(|| panic!("no reset from b2's port: {log}"));
    assert!(
        rst["path"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("{b2_ip}.80 >"))),
        "{rst}"
    );
    assert_ne!(rst["path"]["port"], port.as_str(), "{rst}");
    let refused = ew
        .cp(&[
            "trace",
            "watch",
            "--host",
            b2.host,
            "--port",
            "no-such-port",
            "-c",
            "1",
        ])
        .expect_err("an unknown port is refused");
    assert!(refused.to_string().contains("no-such-port"), "{refused}");

    // 5. A security-group deny, with its rule id.
    ew.create_group("sg-client", &[]).or_panic("sg-client");
    ew.create_group(
        "sg-web",
        &["id=no-http,dir=ingress,proto=tcp,ports=80,remote=0.0.0.0/0,prio=5,action=deny"],
    )
    .or_panic("sg-web");
    ew.set_port_groups("b1", &["sg-client"])
        .or_panic("b1 groups");
    ew.set_port_groups("b2", &["sg-web"]).or_panic("b2 groups");
    ew.wait_converged(eastwest::CONVERGE).or_panic("converge");
    ew.tcp_listen("b2", 80).or_panic("listen on b2");
    let got = ew
        .tcp_connect("b1", ip("b2"), 80, Duration::from_secs(2))
        .or_panic("connect");
    assert_eq!(
        got,
        Connect::TimedOut,
        "b1 -> b2:80 (denied by rule no-http)"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let denied = loop {
        let v = drops(&ew, &[]);
        let found = v["drops"].as_array().and_then(|ds| {
            ds.iter()
                .find(|d| {
                    d["reason"] == "security_group_deny"
                        && d["rules"].as_array().is_some_and(|rs| {
                            rs.iter().any(|r| {
                                r["rule"] == "sg-web/no-http" && r["count"].as_u64() >= Some(1)
                            })
                        })
                })
                .cloned()
        });
        match found {
            Some(d) => break d,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            None => panic!("no security_group_deny with rule sg-web/no-http: {v}"),
        }
    };
    assert!(denied["count"].as_u64() >= Some(1), "{denied}");
    // The same deny seen by a watch on c2: the path ends at security-group, with the rule.
    let (paths, log) = watch(
        &mut ew,
        "watch-denied",
        &["--host", b2.host, "--filter", "tcp dst port 80", "-c", "1"],
        |ew| {
            let _ = ew.tcp_connect("b1", b2_ip, 80, Duration::from_millis(300));
        },
    );
    let p = &paths.first().unwrap_or_else(|| panic!("no path: {log}"))["path"];
    assert_eq!(p["verdict"], "dropped", "{p}");
    assert_eq!(p["reason"], "security_group_deny", "{p}");
    assert_eq!(p["node"], "security-group", "{p}");
    assert_eq!(p["rule"], "sg-web/no-http", "{p}");
    // The text form says the same on the path's header line.
    let (_, text) = watch(
        &mut ew,
        "watch-denied-text",
        &[
            "--host",
            b2.host,
            "-f",
            "tcp dst port 80",
            "-c",
            "1",
            "-o",
            "table",
        ],
        |ew| {
            let _ = ew.tcp_connect("b1", b2_ip, 80, Duration::from_millis(300));
        },
    );
    println!("trace watch (text):\n{text}");
    assert!(
        text.lines().any(|l| l.contains(": TCP [S]")
            && l.contains(
                "-> DROPPED security_group_deny at security-group (rule sg-web/no-http)"
            )),
        "{text}"
    );

    // 6. c3's dataplane goes: c3 is unreachable, c1 and c2 still answer.
    ew.kill_dataplane("c3").or_panic("kill c3's dataplane");
    let deadline = Instant::now() + Duration::from_secs(15);
    let v = loop {
        let v = drops(&ew, &[]);
        let c3_out = v["unreachable"]
            .as_array()
            .is_some_and(|u| u.iter().any(|x| x["host"] == "c3"));
        if c3_out || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let c3 = v["unreachable"]
        .as_array()
        .and_then(|u| u.iter().find(|x| x["host"] == "c3"))
        .unwrap_or_else(|| panic!("c3 not listed unreachable: {v}"));
    assert!(!c3["error"].as_str().unwrap_or("").is_empty(), "{c3}");
    assert_eq!(v["hosts"], serde_json::json!(["c1", "c2"]), "{v}");
    let text = ew.cp(&["drops"]).or_panic("drops table");
    assert!(text.contains("host c3 UNREACHABLE"), "{text}");
}
