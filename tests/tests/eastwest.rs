//! East-west topology tests: VMs on three compute hosts (aegis-dataplane fed by
//! aegis-controlplane) talking over Geneve, in two VPCs with overlapping addresses — see
//! [`aegis_lab::eastwest`] for the topology.
//!
//! Each test builds its own lab (a control plane, three dataplanes, seven VMs) and makes
//! several checks on it, so the suite needs few labs:
//!
//! 1. the lab itself: every object accepted, every dataplane at the control plane's
//!    revision, `ul0` addressed by the control plane; nothing left after a panic;
//! 2. connectivity (same subnet across hosts, across subnets on one host and across hosts,
//!    ping and checksummed TCP), isolation of the VPCs (same addresses, no leak), Geneve
//!    with each VPC's VNI on the underlay, anti-spoofing drop counters;
//! 3. security groups: default-deny ingress with a per-group rule, replies of allowed
//!    connections admitted, denials counted, a removed rule blocking new connections;
//! 4. a VM moving to another host (time from the API call to the first reply), and a
//!    dataplane killed with SIGKILL and started again (time until traffic resumes).
//!
//! Needs root, tshark and the release binaries (`cargo build --release --workspace --bins`,
//! or `$AEGIS_BIN_DIR`); skips loudly without them and fails under CI=true.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aegis_lab::ctl::DropCounters;
use aegis_lab::eastwest::{
    self, first_reply_after, Connect, EastWestLab, GeneveRecord, CONVERGE, DEFAULT_GROUP, MOVER,
    MOVE_DEVICE, MOVE_HOST, VMS,
};
use aegis_lab::{cleanup, cmd, env, probe, Bins};
use common::OrPanic;

/// Tools the tests run inside the namespaces.
const TOOLS: &[&str] = &["ping", "ethtool", "python3", "sysctl", "tshark"];

/// How long a first packet between two VMs may take (ARP, a first Geneve hop).
const FIRST_PING: Duration = Duration::from_secs(10);

/// A started east-west lab, or `None` when the test must skip.
fn eastwest(test: &str, prefix: &str) -> Option<EastWestLab> {
    if !env::lab_ready(test, TOOLS) {
        return None;
    }
    let bins = Bins::locate();
    let missing = bins
        .dataplane()
        .and_then(|_| bins.aegisctl())
        .and_then(|_| bins.controlplane());
    if let Err(e) = missing {
        env::skip_or_fail(test, &e.to_string());
        return None;
    }
    Some(EastWestLab::start_with(prefix, bins).or_panic("start the east-west lab"))
}

/// The address of VM `name`.
fn ip(name: &str) -> &'static str {
    eastwest::vm(name).or_panic("vm").ip
}

/// `count` pings from `from` to `dst`, all answered.
fn pings_all(ew: &EastWestLab, from: &str, dst: &str, count: u32) {
    let out = ew.ping(from, dst, count).or_panic("ping");
    let text = common::stdout(&out);
    let s = probe::ping_summary(&text).unwrap_or_else(|| panic!("no ping summary:\n{text}"));
    assert_eq!(
        (s.transmitted, s.received),
        (count, count),
        "{from} -> {dst}:\n{text}"
    );
}

/// `dst` does not answer `from`.
fn pings_none(ew: &EastWestLab, from: &str, dst: &str, count: u32, why: &str) {
    let out = ew.ping(from, dst, count).or_panic("ping");
    let text = common::stdout(&out);
    assert!(
        !text.contains("bytes from"),
        "{from} -> {dst} must not be answered ({why}):\n{text}"
    );
}

/// Waits until `from` reaches `dst`, then 5 of 5 pings.
fn reaches(ew: &EastWestLab, from: &str, dst: &str) {
    ew.wait_ping(from, dst, FIRST_PING)
        .unwrap_or_else(|e| panic!("{from} -> {dst}: {e}"));
    pings_all(ew, from, dst, 5);
}

/// `bytes` over TCP from `client` to `server`, SHA-256 equal at both ends.
fn transfer(ew: &mut EastWestLab, client: &str, server: &str, bytes: u64) {
    let t = ew
        .tcp_transfer(client, server, bytes)
        .unwrap_or_else(|e| panic!("TCP {client} -> {server}: {e}"));
    assert_eq!(t.sent, bytes, "{client} -> {server}");
    assert_eq!(
        t.received, bytes,
        "{client} -> {server}: bytes lost or duplicated"
    );
    assert_eq!(
        t.received_sha256, t.sent_sha256,
        "{client} -> {server}: corrupted"
    );
    assert_eq!(
        t.echoed_sha256, t.sent_sha256,
        "{client} -> {server}: digest"
    );
}

/// Counter changes between two snapshots.
fn deltas(before: &DropCounters, after: &DropCounters) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// Drop counters of `host`, or summed over all hosts (`None`: where a packet is dropped is
/// the dataplane's choice, e.g. the ingress rule of a remote port).
fn counters(ew: &EastWestLab, host: Option<&str>) -> DropCounters {
    match host {
        Some(h) => ew.drop_counters(h),
        None => ew.drop_counters_all(),
    }
    .or_panic("show errors")
}

/// Polls the drop counters (see [`counters`]) until `reason` moved by at least `n` since
/// `before` (or 10 s pass); returns all deltas.
fn wait_drops(
    ew: &EastWestLab,
    host: Option<&str>,
    before: &DropCounters,
    reason: &str,
    n: u64,
) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = deltas(before, &counters(ew, host));
        if d.get(reason).copied().unwrap_or(0) >= n || Instant::now() >= deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the dataplanes to apply revision `at_least` (or later).
fn converge(ew: &mut EastWestLab, at_least: u64, what: &str) {
    let r = ew
        .wait_converged(CONVERGE)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(r >= at_least, "{what}: converged to {r} < {at_least}");
}

/// The deliberate panic of the cleanup test.
const DELIBERATE: &str = "deliberate panic inside the east-west lab";

#[test]
fn lab_comes_up_converged_and_nothing_is_left_after_a_panic() {
    let mut id = None;
    // Checks on a fresh lab, then a deliberate panic: teardown must still remove it all.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(mut ew) = eastwest("eastwest_lab", "ewlab") else {
            return;
        };
        id = Some(ew.lab.id().clone());
        lab_checks(&mut ew);
        panic!("{DELIBERATE}");
    }));
    match result {
        Ok(()) => return, // skipped
        Err(p) if p.downcast_ref::<String>().is_some_and(|s| s == DELIBERATE) => {}
        Err(p) => std::panic::resume_unwind(p),
    }
    let id = id.expect("the lab started");
    let left: Vec<String> = cleanup::list_namespaces()
        .or_panic("ip netns list")
        .into_iter()
        .filter(|n| id.owns(n))
        .collect();
    assert!(left.is_empty(), "namespaces left after the panic: {left:?}");
    assert!(
        !cleanup::lab_dir(&id).exists(),
        "lab dir left: {}",
        cleanup::lab_dir(&id).display()
    );
    let dpdk: Vec<String> = std::fs::read_dir(cleanup::DPDK_RUNTIME_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| id.owns(n))
                .collect()
        })
        .unwrap_or_default();
    assert!(dpdk.is_empty(), "DPDK runtime dirs left: {dpdk:?}");
}

/// What must hold as soon as the lab is up, before any VM traffic.
fn lab_checks(ew: &mut EastWestLab) {
    for (kind, want) in [
        ("host", eastwest::HOSTS.len()),
        ("vpc", eastwest::VPCS.len()),
        ("subnet", eastwest::SUBNETS.len()),
        ("port", VMS.len()),
        ("security-group", 1),
    ] {
        let v = ew.cp_json(&[kind, "list"]).or_panic("list");
        if kind == "host" {
            let n = v["hosts"].as_array().map_or(0, Vec::len);
            assert_eq!(n, want, "host list: {v}");
            continue;
        }
        let names = aegis_lab::cpcluster::object_names(&v).or_panic("names");
        assert_eq!(names.len(), want, "{kind} list: {names:?}");
    }
    let (revision, hosts) = ew.host_status().or_panic("host list");
    assert_eq!(hosts.len(), eastwest::HOSTS.len(), "{hosts:?}");
    for h in &hosts {
        assert!(h.converged_to(revision), "revision {revision}: {h:?}");
    }
    for h in eastwest::HOSTS {
        let v = ew
            .dp(h)
            .unwrap()
            .json(&["show", "interfaces"])
            .or_panic("dp show interfaces");
        let list = v["interfaces"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = list.iter().filter_map(|i| i["name"].as_str()).collect();
        assert_eq!(names, eastwest::host_devices(h), "{h}: {v}");
        let ul = &list[0];
        let want = format!("{}/24", eastwest::underlay_ip(h).unwrap());
        assert!(
            ul["addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == want.as_str())),
            "{h}: ul0 lacks {want} from the control plane: {ul}"
        );
        let status = ew
            .dp(h)
            .unwrap()
            .json(&["show", "status"])
            .or_panic("dp show status");
        assert_eq!(
            status["controlplane"]["applied_revision"].as_u64(),
            Some(revision),
            "{h}: {status}"
        );
    }
    // `show vpc`: every host sees both VPCs with their VNIs, and every VM port where it
    // lives: on its dataplane port at home, behind its host's underlay address elsewhere.
    // `show interfaces` names the VM port bound to each dataplane port.
    for h in eastwest::HOSTS {
        let ctl = ew.dp(h).unwrap();
        let v = ctl.json(&["show", "vpc"]).or_panic("dp show vpc");
        assert_eq!(v["revision"].as_u64(), Some(revision), "{h}: {v}");
        let vpcs = v["vpcs"].as_array().cloned().unwrap_or_default();
        for def in eastwest::VPCS {
            let vpc = vpcs
                .iter()
                .find(|x| x["name"] == def.name)
                .unwrap_or_else(|| panic!("{h}: no VPC {} in {v}", def.name));
            assert_eq!(vpc["vni"], def.vni, "{h}: {vpc}");
        }
        for vm in VMS {
            let vpc = vpcs.iter().find(|x| x["name"] == vm.vpc).unwrap();
            let port = vpc["ports"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == vm.name))
                .unwrap_or_else(|| panic!("{h}: no port {} in {vpc}", vm.name));
            assert_eq!(port["subnet"], vm.subnet, "{h}: {port}");
            if vm.host == h {
                assert_eq!(port["location"], "local", "{h}: {port}");
                assert_eq!(port["device"], vm.device().as_str(), "{h}: {port}");
            } else {
                assert_eq!(port["location"], "remote", "{h}: {port}");
                let want = eastwest::underlay_ip(vm.host).unwrap();
                assert_eq!(port["host_ip"], want.as_str(), "{h}: {port}");
            }
        }
        let ifs = ctl
            .json(&["show", "interfaces"])
            .or_panic("dp show interfaces");
        for vm in VMS.iter().filter(|vm| vm.host == h) {
            let i = ifs["interfaces"]
                .as_array()
                .and_then(|l| l.iter().find(|i| i["name"] == vm.device().as_str()))
                .unwrap_or_else(|| panic!("{h}: no interface {} in {ifs}", vm.device()));
            assert_eq!(i["endpoint"], vm.name, "{h}: {i}");
        }
    }
    for v in VMS {
        let mac = ew.lab.mac(v.name, eastwest::VM_IF).or_panic("mac");
        assert_eq!(mac, v.mac, "{}", v.name);
        let link = ew
            .lab
            .ip(v.name, &["-o", "link", "show", "dev", eastwest::VM_IF])
            .or_panic("ip link");
        assert!(link.contains("mtu 1450"), "{}: {link}", v.name);
    }
    let eth1 = ew
        .lab
        .ip(MOVER, &["-o", "link", "show", "dev", eastwest::MOVE_IF])
        .or_panic("ip link");
    assert!(!eth1.contains(",UP"), "b2's eth1 must be down: {eth1}");
    helper_checks(ew);
    ew.check_alive("lab checks").or_panic("daemons");
}

/// The helpers the traffic tests rely on, checked without VM-to-VM traffic (so a failure
/// of those tests is the dataplane's, not the lab's).
fn helper_checks(ew: &mut EastWestLab) {
    // Rules written with `apply` read back exactly as `aegisctl create` writes them.
    let rules = [
        "id=ssh,dir=ingress,proto=tcp,ports=22,group=sg-probe,prio=10,action=allow",
        "id=no-http,dir=ingress,proto=tcp,ports=80,remote=0.0.0.0/0,prio=5,action=deny",
    ];
    ew.create_group("sg-probe", &rules[..1])
        .or_panic("create sg-probe");
    let read = |ew: &EastWestLab| {
        let g = ew.get_object("security-group", "sg-probe").or_panic("get");
        g["spec"]["SecurityGroup"]["rules"].clone()
    };
    let created = read(ew);
    ew.set_group_rules("sg-probe", &rules)
        .or_panic("update sg-probe");
    let updated = read(ew);
    assert_eq!(updated[0], created[0], "apply wrote rule ssh differently");
    assert_eq!(updated[1]["action"], 2, "{updated}");
    // Port updates through `apply`: groups, and a move there and back.
    let r = ew
        .set_port_groups("b1", &[DEFAULT_GROUP, "sg-probe"])
        .or_panic("b1 groups");
    converge(ew, r, "b1 in two groups");
    ew.move_port(MOVER, MOVE_HOST, MOVE_DEVICE)
        .or_panic("move b2");
    let port = ew.get_object("port", MOVER).or_panic("get b2");
    assert_eq!(port["spec"]["Port"]["host"], MOVE_HOST, "{port}");
    assert_eq!(port["spec"]["Port"]["device"], MOVE_DEVICE, "{port}");
    let b2 = eastwest::vm(MOVER).unwrap();
    let back = ew
        .move_port(MOVER, b2.host, &b2.device())
        .or_panic("move b2 back");
    converge(ew, back.revision, "b2 moved and back");
    // kill -9 and a new process: back at the revision, from its cache and the feed.
    let r = ew.restart_dataplane("c2").or_panic("restart c2");
    converge(ew, back.revision, "after c2's restart");
    eprintln!(
        "eastwest: c2's dataplane restarted; admin socket {:.0} ms after the kill",
        (r.socket_up - r.killed).as_secs_f64() * 1000.0
    );
    assert!(ew.lab.path("c2-cache.json").exists(), "no cache for c2");
    // Probes inside one VM: a greeting listener, a refused port, a timestamped ping flow,
    // and tshark on the underlay bridge.
    let b1 = eastwest::vm("b1").unwrap();
    ew.tcp_listen("b1", 7000).or_panic("listen");
    let t = Duration::from_secs(2);
    assert_eq!(
        ew.tcp_connect("b1", b1.ip, 7000, t).unwrap(),
        Connect::Connected
    );
    assert_eq!(
        ew.tcp_connect("b1", b1.ip, 7001, t).unwrap(),
        Connect::Refused
    );
    let now = std::time::SystemTime::now();
    let flow = ew
        .ping_flow("b1", b1.ip, Duration::from_millis(10))
        .or_panic("flow");
    std::thread::sleep(Duration::from_millis(300));
    let log = ew.lab.stop(flow);
    assert!(
        first_reply_after(&log, now).is_some_and(|d| d < Duration::from_secs(1)),
        "{log}"
    );
    ew.capture_underlay(|_| Ok(())).or_panic("capture");
    // The VM side of the move: eth0 down without its address, eth1 up with it.
    ew.move_vm_interface().or_panic("move b2's interface");
    let addrs = ew
        .lab
        .ip(MOVER, &["-o", "addr", "show"])
        .or_panic("ip addr");
    let on_eth1 = format!("{} inet {}", eastwest::MOVE_IF, b2.cidr());
    assert!(
        addrs.lines().any(|l| l
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&on_eth1)),
        "{addrs}"
    );
    assert!(
        !addrs.contains(&format!("{} inet", eastwest::VM_IF)),
        "{addrs}"
    );
    let route = ew
        .lab
        .ip(MOVER, &["route", "show", "default"])
        .or_panic("ip route");
    assert!(route.contains("dev eth1"), "{route}");
}

#[test]
fn vms_reach_each_other_inside_their_vpc_only_over_geneve() {
    let Some(mut ew) = eastwest("eastwest_connectivity", "ewconn") else {
        return;
    };
    // Same subnet on different hosts; different subnets on one host; both at once.
    for (a, b) in [("b1", "b2"), ("b1", "b3"), ("b1", "b4")] {
        reaches(&ew, a, ip(b));
        reaches(&ew, b, ip(a));
    }
    for server in ["b2", "b3", "b4"] {
        transfer(&mut ew, "b1", server, 1 << 20);
    }

    // Isolation: red's 10.1.3.5 is not blue's; red's 10.1.1.12 is r2, and b2 (blue's
    // 10.1.1.12) sees nothing of it.
    pings_none(&ew, "b1", ip("r3"), 3, "10.1.3.5 exists only in red");
    let on_b2 = ew
        .start_capture("b2", eastwest::VM_IF, "icmp", &["ip.src", "ip.dst"])
        .or_panic("capture on b2");
    let on_r2 = ew
        .start_capture("r2", eastwest::VM_IF, "icmp", &["ip.src", "ip.dst"])
        .or_panic("capture on r2");
    reaches(&ew, "r1", ip("r2"));
    let (b2_rows, r2_rows) = (ew.finish_capture(on_b2), ew.finish_capture(on_r2));
    assert!(b2_rows.is_empty(), "b2 received red traffic: {b2_rows:?}");
    assert!(
        r2_rows.iter().any(|r| r[0] == ip("r1") && r[1] == ip("r2")),
        "r2 did not see r1's echo requests: {r2_rows:?}"
    );

    // The underlay carries each VPC under its VNI, between the right hosts.
    let records = ew
        .capture_underlay(|ew| {
            // One ping more than check_geneve asks to see: the capture may still miss a
            // first packet on a loaded machine.
            pings_all(ew, "b1", ip("b2"), 4);
            pings_all(ew, "r1", ip("r2"), 4);
            Ok(())
        })
        .or_panic("capture on br-ul");
    check_geneve(&records);

    // Anti-spoofing: frames from b1 with another source IP, or another source MAC.
    let b1 = eastwest::vm("b1").unwrap();
    let before = counters(&ew, Some(b1.host));
    let mut frames = Vec::new();
    for seq in 0..3 {
        frames.push(EastWestLab::echo_frame(b1.mac, "10.1.1.99", ip("b2"), seq).unwrap());
    }
    ew.send_frames("b1", &frames)
        .or_panic("send spoofed-IP frames");
    let d = wait_drops(&ew, Some(b1.host), &before, "port_spoofed_ip", 3);
    assert_eq!(
        d.get("port_spoofed_ip"),
        Some(&3),
        "deltas on {}: {d:?}",
        b1.host
    );
    let before = counters(&ew, Some(b1.host));
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|seq| EastWestLab::echo_frame("02:00:00:00:64:99", b1.ip, ip("b2"), seq).unwrap())
        .collect();
    ew.send_frames("b1", &frames)
        .or_panic("send spoofed-MAC frames");
    let d = wait_drops(&ew, Some(b1.host), &before, "port_spoofed_mac", 3);
    assert_eq!(
        d.get("port_spoofed_mac"),
        Some(&3),
        "deltas on {}: {d:?}",
        b1.host
    );
    pings_all(&ew, "b1", ip("b2"), 3);
    ew.check_alive("connectivity").or_panic("daemons");
}

/// Every Geneve packet: a known VNI, its inner source a VM of that VPC on the host of the
/// outer source, its inner destination on the host of the outer destination, the UDP
/// source port in 49152..=65535; and both directions of b1↔b2 (VNI 100) and r1↔r2 (200).
fn check_geneve(records: &[GeneveRecord]) {
    let all: Vec<String> = records.iter().map(ToString::to_string).collect();
    let all = all.join("\n  ");
    assert!(!records.is_empty(), "no Geneve packet on br-ul");
    let host_of = |ip: Ipv4Addr| -> Option<&'static str> {
        eastwest::HOSTS
            .into_iter()
            .find(|h| eastwest::underlay_ip(h).ok().and_then(|a| a.parse().ok()) == Some(ip))
    };
    for r in records {
        let src = EastWestLab::vm_at(r.vni, r.inner_src)
            .unwrap_or_else(|| panic!("{r}: inner source is no VM of VNI {}\n  {all}", r.vni));
        let dst = EastWestLab::vm_at(r.vni, r.inner_dst)
            .unwrap_or_else(|| panic!("{r}: inner destination is no VM of VNI {}\n  {all}", r.vni));
        assert_eq!(
            host_of(r.outer_src),
            Some(src.host),
            "{r}: outer source\n  {all}"
        );
        assert_eq!(
            host_of(r.outer_dst),
            Some(dst.host),
            "{r}: outer destination\n  {all}"
        );
        assert!(r.udp_src_port >= 49152, "{r}: UDP source port\n  {all}");
    }
    for (vni, a, b) in [(100, "b1", "b2"), (200, "r1", "r2")] {
        for (x, y) in [(a, b), (b, a)] {
            let (xi, yi): (Ipv4Addr, Ipv4Addr) = (ip(x).parse().unwrap(), ip(y).parse().unwrap());
            let n = records
                .iter()
                .filter(|r| r.vni == vni && r.inner_src == xi && r.inner_dst == yi)
                .count();
            assert!(
                n >= 3,
                "{x} -> {y}: {n} packets with VNI {vni}, expected 3\n  {all}"
            );
        }
    }
    eprintln!("eastwest: Geneve on br-ul:\n  {all}");
}

#[test]
fn security_groups_deny_by_default_admit_replies_and_follow_rule_changes() {
    let Some(mut ew) = eastwest("eastwest_security_groups", "ewsg") else {
        return;
    };
    reaches(&ew, "b1", ip("b2"));
    let web_rules = [
        "id=ssh,dir=ingress,proto=tcp,ports=22,group=sg-client,prio=10,action=allow",
        "id=no-http,dir=ingress,proto=tcp,ports=80,remote=0.0.0.0/0,prio=5,action=deny",
    ];
    ew.create_group("sg-client", &[])
        .or_panic("create sg-client");
    ew.create_group("sg-web", &web_rules)
        .or_panic("create sg-web");
    ew.set_port_groups("b1", &["sg-client"])
        .or_panic("b1 groups");
    let r = ew.set_port_groups("b2", &["sg-web"]).or_panic("b2 groups");
    converge(&mut ew, r, "after the group changes");
    let short = Duration::from_secs(2);
    for port in [22, 80] {
        ew.tcp_listen("b2", port).or_panic("listen on b2");
    }
    ew.tcp_listen("b1", 22).or_panic("listen on b1");

    // Allowed ingress (b1 is in sg-client), and its replies reach b1 although sg-client has
    // no ingress rule at all.
    let got = ew
        .tcp_connect("b1", ip("b2"), 22, short)
        .or_panic("connect");
    assert_eq!(got, Connect::Connected, "b1 -> b2:22 (allowed by rule ssh)");

    // Denied ingress: by rule no-http, and by default (ICMP, b4 not in sg-client, b2 -> b1).
    let before = counters(&ew, None);
    let got = ew
        .tcp_connect("b1", ip("b2"), 80, short)
        .or_panic("connect");
    assert_eq!(
        got,
        Connect::TimedOut,
        "b1 -> b2:80 (denied by rule no-http)"
    );
    let d = wait_drops(&ew, None, &before, "security_group_deny", 1);
    assert!(
        d.get("security_group_deny").is_some_and(|n| *n >= 1),
        "b1 -> b2:80: deltas of all hosts: {d:?}"
    );
    let c2 = eastwest::vm("b2").unwrap().host;
    let n = ew
        .rule_denials(c2, "sg-web", "no-http")
        .or_panic("rule counters");
    assert!(
        n.is_some_and(|n| n >= 1),
        "rule sg-web/no-http on {c2}: {n:?} denials"
    );
    // The allowed connection b1 -> b2:22 is in b2's host's table, tracked on b2's port,
    // and the filter finds it by port, protocol and address; the denied one to port 80
    // is not there.
    let conns = ew
        .connections(c2, &["--port", "b2", "--proto", "tcp", "--ip", ip("b1")])
        .or_panic("show connections");
    assert!(
        conns.iter().any(|c| c["dst_port"] == 22
            && c["src_ip"] == ip("b1")
            && c["dst_ip"] == ip("b2")
            && c["endpoint"] == "b2"
            && c["state"].as_str().is_some_and(|s| s.starts_with("tcp_"))),
        "b1 -> b2:22 on {c2}: {conns:?}"
    );
    assert!(
        !conns.iter().any(|c| c["dst_port"] == 80),
        "denied b1 -> b2:80 must not be tracked: {conns:?}"
    );
    let none = ew
        .connections(c2, &["--port", "b2", "--proto", "udp", "--ip", ip("b1")])
        .or_panic("show connections");
    assert!(none.is_empty(), "no UDP between b1 and b2: {none:?}");
    pings_none(&ew, "b1", ip("b2"), 2, "sg-web admits no ICMP");
    let got = ew
        .tcp_connect("b4", ip("b2"), 22, short)
        .or_panic("connect");
    assert_eq!(
        got,
        Connect::TimedOut,
        "b4 -> b2:22 (b4 is not in sg-client)"
    );
    let before = counters(&ew, None);
    let got = ew
        .tcp_connect("b2", ip("b1"), 22, short)
        .or_panic("connect");
    assert_eq!(
        got,
        Connect::TimedOut,
        "b2 -> b1:22 (sg-client admits no ingress)"
    );
    let d = wait_drops(&ew, None, &before, "security_group_deny", 1);
    assert!(
        d.get("security_group_deny").is_some_and(|n| *n >= 1),
        "b2 -> b1:22: deltas of all hosts: {d:?}"
    );
    let got = ew
        .tcp_connect("b1", ip("b2"), 22, short)
        .or_panic("connect");
    assert_eq!(got, Connect::Connected, "b1 -> b2:22 still allowed");

    // The rule is removed: new connections are refused by default deny.
    let r = ew
        .set_group_rules("sg-web", &web_rules[1..])
        .or_panic("update sg-web");
    let g = ew
        .get_object("security-group", "sg-web")
        .or_panic("get sg-web");
    let ids: Vec<&str> = g["spec"]["SecurityGroup"]["rules"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["no-http"], "sg-web after the update: {g}");
    converge(&mut ew, r, "after removing rule ssh");
    let got = ew
        .tcp_connect("b1", ip("b2"), 22, short)
        .or_panic("connect");
    assert_eq!(
        got,
        Connect::TimedOut,
        "b1 -> b2:22 after rule ssh was removed"
    );
    // Ports back in the default group: everything flows again.
    ew.set_port_groups("b1", &[DEFAULT_GROUP])
        .or_panic("b1 groups");
    let r = ew
        .set_port_groups("b2", &[DEFAULT_GROUP])
        .or_panic("b2 groups");
    converge(&mut ew, r, "back to sg-default");
    reaches(&ew, "b1", ip("b2"));
    ew.check_alive("security groups").or_panic("daemons");
}

#[test]
fn a_moved_vm_and_a_restarted_dataplane_are_reachable_again_quickly() {
    let Some(mut ew) = eastwest("eastwest_move_restart", "ewmove") else {
        return;
    };
    reaches(&ew, "b1", ip("b2"));
    reaches(&ew, "b4", ip("b2"));

    // b2 moves from c2 to c3: the VM side first (as a migrated VM appears on its new host),
    // then the API call; time until b1's flow gets an answer again.
    let flow = ew
        .ping_flow("b1", ip("b2"), Duration::from_millis(10))
        .or_panic("flow b1 -> b2");
    std::thread::sleep(Duration::from_millis(300));
    ew.move_vm_interface().or_panic("move b2's interface");
    let moved = ew
        .move_port(MOVER, MOVE_HOST, MOVE_DEVICE)
        .or_panic("move b2's port");
    let deadline = Instant::now() + Duration::from_secs(5);
    let took = loop {
        let log = ew.lab.proc(flow).log();
        if let Some(d) = first_reply_after(&log, moved.requested_wall) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "b1 got no reply from b2 within 5 s of the move:\n{}",
            ew.lab.proc(flow).log_tail(10)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    ew.lab.stop(flow);
    eprintln!(
        "eastwest: move of b2 to c3: API call {:.0} ms, first reply {:.0} ms after the call",
        (moved.acknowledged - moved.requested).as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0
    );
    assert!(
        took < Duration::from_secs(1),
        "first reply {took:?} after the move"
    );
    converge(&mut ew, moved.revision, "after the move");
    reaches(&ew, "b4", ip("b2")); // now on the same host
    reaches(&ew, "b3", ip("b2"));
    transfer(&mut ew, "b1", "b2", 1 << 20);

    // c1's dataplane (b1, b3, r3) is killed and started again: b2's flow to b1 resumes.
    let flow = ew
        .ping_flow("b2", ip("b1"), Duration::from_millis(10))
        .or_panic("flow b2 -> b1");
    std::thread::sleep(Duration::from_millis(300));
    let restarted = ew
        .restart_dataplane("c1")
        .or_panic("restart c1's dataplane");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outage = loop {
        let log = ew.lab.proc(flow).log();
        if let Some(d) = first_reply_after(&log, restarted.killed_wall) {
            break d;
        }
        ew.check_alive("the restart").or_panic("daemons");
        assert!(
            Instant::now() < deadline,
            "b2 got no reply from b1 within 30 s of c1's restart:\n{}",
            ew.lab.proc(flow).log_tail(10)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    ew.lab.stop(flow);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "eastwest: kill -9 of c1's dataplane: new process after {:.0} ms, admin socket after \
         {:.0} ms, first reply after {:.0} ms (all from the kill)",
        ms(restarted.started - restarted.killed),
        ms(restarted.socket_up - restarted.killed),
        ms(outage)
    );
    converge(&mut ew, moved.revision, "after the restart");
    for (a, b) in [("b1", "b3"), ("b3", "b4"), ("b1", "b2")] {
        reaches(&ew, a, ip(b));
    }
    pings_none(&ew, "b1", ip("r3"), 2, "10.1.3.5 exists only in red");
    let cache = ew.lab.path("c1-cache.json");
    assert!(
        cache.exists(),
        "no control-plane cache at {}",
        cache.display()
    );
    let log = cmd::lossy(&std::fs::read(ew.lab.path("dp-c1-r1.log")).unwrap_or_default());
    assert!(
        !log.contains("panicked"),
        "c1's new dataplane panicked:\n{log}"
    );
    ew.check_alive("move and restart").or_panic("daemons");
}
