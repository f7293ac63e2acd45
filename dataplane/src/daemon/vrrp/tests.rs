//! Two speakers on one simulated link, stepped the way the control loop steps them.

use std::cell::RefCell;
use std::path::PathBuf;

use super::*;
use crate::state::{ForwardingConfig, PortConfig};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);

#[derive(Default)]
struct Link {
    sent: RefCell<Vec<(u16, Vec<u8>)>>,
    down: RefCell<bool>,
}

impl VrrpIo for Link {
    fn send(&self, port: u16, frame: Vec<u8>) -> bool {
        self.sent.borrow_mut().push((port, frame));
        true
    }
    fn link_up(&self, _port: u16) -> bool {
        !*self.down.borrow()
    }
}

struct Node {
    speaker: VrrpSpeaker,
    tables: Tables,
    cell: std::sync::Arc<SnapshotCell>,
    io: Link,
}

fn conf(priority: u8, extra: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n interface ext0\n version 3\n virtual_router_id 77\n \
         priority {priority}\n advert_int 0.1\n virtual_ipaddress {{\n  10.77.0.100/24\n }}\n \
         track_interface {{\n  int0 weight -150\n }}\n{extra}}}\n"
    )
}

fn node(addr: &str, mac_last: u8, priority: u8, extra: &str) -> Node {
    let port = |name: &str, a: &str, m: u8| PortConfig {
        mac: Some([2, 0, 0, 0, m, mac_last]),
        addresses: vec![a.parse().unwrap()],
        ..PortConfig::new(name)
    };
    let mut tables = Tables::new(&ForwardingConfig {
        ports: vec![port("ext0", addr, 1), port("int0", "10.1.0.1/24", 2)],
        routes: Vec::new(),
        neighbours: Vec::new(),
    })
    .unwrap();
    let setup = VrrpSetup {
        source: PathBuf::from("keepalived.conf"),
        imported: aegis_vrrp::keepalived::import(&conf(priority, extra)).unwrap(),
    };
    let speaker = VrrpSpeaker::new(&setup, &mut tables).unwrap();
    let cell = SnapshotCell::new(tables.snapshot());
    Node {
        speaker,
        tables,
        cell,
        io: Link::default(),
    }
}

impl Node {
    fn start(&mut self, now: Duration) {
        self.speaker
            .start(now, &mut self.tables, &self.cell, &self.io);
    }
    fn step(&mut self, now: Duration) {
        self.speaker
            .step(now, &mut self.tables, &self.cell, &self.io);
    }
    fn state(&self) -> String {
        self.speaker.info(&self.tables).instances[0].state.clone()
    }
    fn owns_vip(&self) -> bool {
        self.cell.load().is_local_on(0, VIP)
    }
    fn take_sent(&self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut *self.io.sent.borrow_mut())
    }
}

/// Delivers the VRRP frames `from` sent to `to` (the rest is discarded); returns how many.
fn deliver(from: &Node, to: &mut Node, now: Duration) -> usize {
    let mut n = 0;
    for (port, f) in from.take_sent() {
        if f.len() > 23 && f[12..14] == [8, 0] && f[23] == 112 {
            to.speaker
                .receive(now, &PuntedFrame::new(port, &f).unwrap());
            n += 1;
        }
    }
    n
}

/// Steps both nodes every 5 ms for `ms` milliseconds; returns when b last heard a.
fn run(a: &mut Node, b: &mut Node, from_ms: u64, ms: u64) -> u64 {
    let mut heard = 0;
    for t in (from_ms..from_ms + ms).step_by(5) {
        let now = Duration::from_millis(t);
        a.step(now);
        if deliver(a, b, now) > 0 {
            heard = t;
        }
        b.step(now);
        deliver(b, a, now);
    }
    heard
}

/// a (priority 200) and b (100) started together and run for a second; also when b last
/// heard a.
fn pair() -> (Node, Node, u64) {
    let mut a = node("10.77.0.2/24", 0xa, 200, "");
    let mut b = node("10.77.0.3/24", 0xb, 100, "");
    a.start(Duration::ZERO);
    b.start(Duration::ZERO);
    let heard = run(&mut a, &mut b, 0, 1_000);
    (a, b, heard)
}

#[test]
fn the_higher_priority_claims_installs_the_address_and_the_other_backs_off() {
    let (a, b, _) = pair();
    assert_eq!(a.state(), "MASTER");
    assert_eq!(b.state(), "BACKUP");
    assert!(a.owns_vip() && !b.owns_vip());
    let info = b.speaker.info(&b.tables);
    assert_eq!(info.instances[0].master, Some(Ipv4Addr::new(10, 77, 0, 2)));
    assert_eq!(info.instances[0].master_priority, 200);
    assert!(info.instances[0].adverts_rx >= 5, "{info:?}");
    assert_eq!(info.instances[0].addresses[0].to_string(), "10.77.0.100/24");
}

#[test]
fn the_backup_takes_over_after_the_master_down_interval_and_announces_it() {
    let (_a, mut b, heard) = pair();
    b.take_sent();
    // a goes silent at 1 s: b claims 3 × 100 ms + 156/256 × 100 ms after it last heard a
    // (±1 step).
    let mut took = None;
    for t in (1_000..2_000u64).step_by(5) {
        b.step(Duration::from_millis(t));
        if took.is_none() && b.state() == "MASTER" {
            took = Some(t);
            // The address is in the published snapshot before the first GARP is queued
            // for the workers to send.
            assert!(b.owns_vip());
            let sent = b.take_sent();
            let garps: Vec<_> = sent.iter().filter(|(_, f)| f[12..14] == [8, 6]).collect();
            assert_eq!(garps.len(), 5, "garp_master_repeat 5");
            assert_eq!(&garps[0].1[28..32], &VIP.octets(), "sender is the VIP");
        }
    }
    let took = took.expect("b took over") - heard;
    assert!(
        (360..=366).contains(&took),
        "took over {took} ms after the last advert"
    );
}

#[test]
fn sigterm_like_shutdown_hands_over_within_the_skew() {
    let (mut a, mut b, _) = pair();
    let now = Duration::from_millis(1_000);
    a.speaker.shutdown(now, &mut a.tables, &a.cell, &a.io);
    assert!(!a.owns_vip(), "a gave the address up");
    deliver(&a, &mut b, now);
    let mut took = None;
    for t in (1_000..1_500u64).step_by(5) {
        b.step(Duration::from_millis(t));
        if took.is_none() && b.state() == "MASTER" {
            took = Some(t);
        }
    }
    // Skew: 156/256 × 100 ms ≈ 61 ms.
    let took = took.expect("b took over") - 1_000;
    assert!(
        (60..=70).contains(&took),
        "took over {took} ms after priority 0"
    );
    assert_eq!(b.speaker.info(&b.tables).instances[0].priority_zero_rx, 1);
}

#[test]
fn a_tracked_port_going_down_lowers_priority_and_hands_over() {
    let (mut a, mut b, _) = pair();
    assert_eq!(a.state(), "MASTER");
    a.tables.set_port_up(1, false).unwrap();
    run(&mut a, &mut b, 1_000, 1_000);
    let info = a.speaker.info(&a.tables).instances[0].clone();
    assert_eq!(info.effective_priority, 50);
    assert_eq!(a.state(), "BACKUP");
    assert_eq!(b.state(), "MASTER");
    // Link back: a preempts again.
    a.tables.set_port_up(1, true).unwrap();
    run(&mut a, &mut b, 2_000, 1_000);
    assert_eq!(a.state(), "MASTER");
    assert_eq!(b.state(), "BACKUP");
}

#[test]
fn refused_frames_are_counted_by_reason() {
    let mut b = node("10.77.0.3/24", 0xb, 100, "");
    b.start(Duration::ZERO);
    let repr = aegis_vrrp::wire::Repr {
        version: Version::V3,
        vrid: 77,
        priority: 200,
        interval_cs: 10,
        auth_type: aegis_vrrp::wire::AuthType::None,
        auth_data: [0; 8],
        addresses: vec![VIP],
    };
    let src = Ipv4Addr::new(10, 77, 0, 9);
    let good =
        envelope::emit_frame(&repr, [2, 0, 0, 0, 0, 9], None, src, envelope::GROUP, 1).unwrap();
    let mut bad_ttl = good.clone();
    bad_ttl[22] = 64;
    let mut other_vrid = repr.clone();
    other_vrid.vrid = 9;
    let other = envelope::emit_frame(
        &other_vrid,
        [2, 0, 0, 0, 0, 9],
        None,
        src,
        envelope::GROUP,
        2,
    )
    .unwrap();
    let now = Duration::from_millis(10);
    for f in [&good[..20], &bad_ttl[..], &other[..], &good[..]] {
        b.speaker.receive(now, &PuntedFrame::new(0, f).unwrap());
    }
    let info = b.speaker.info(&b.tables);
    let errors: BTreeMap<_, _> = info.rx_errors.into_iter().collect();
    assert_eq!(errors.get("truncated"), Some(&1));
    assert_eq!(errors.get("no_instance"), Some(&1));
    // A TTL rewritten on the way (the header checksum no longer matches).
    assert_eq!(errors.get("ipv4_checksum"), Some(&1));
    assert_eq!(info.instances[0].adverts_rx, 1);
}

#[test]
fn config_errors_name_the_file_line_and_port() {
    let mut tables = Tables::new(&ForwardingConfig {
        ports: vec![PortConfig::new("ext0")],
        routes: Vec::new(),
        neighbours: Vec::new(),
    })
    .unwrap();
    let setup = VrrpSetup {
        source: PathBuf::from("/etc/aegis/keepalived.conf"),
        imported: aegis_vrrp::keepalived::import(
            "vrrp_instance VI_1 {\n interface ext0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
        )
        .unwrap(),
    };
    let e = VrrpSpeaker::new(&setup, &mut tables)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "/etc/aegis/keepalived.conf: line 1: vrrp_instance VI_1: port ext0 has no address"
        ),
        "{e}"
    );
}

#[test]
fn use_vmac_gives_the_master_the_virtual_mac_and_takes_it_back() {
    let mut a = node("10.77.0.2/24", 0xa, 200, " use_vmac\n");
    a.start(Duration::ZERO);
    for t in (0..1_000u64).step_by(5) {
        a.step(Duration::from_millis(t));
    }
    assert_eq!(a.state(), "MASTER");
    let vmac = [0, 0, 0x5e, 0, 1, 77];
    let snap = a.cell.load();
    let port = &snap.ports[0];
    assert_eq!(
        port.mac_for(VIP),
        vmac,
        "ARP for the VIP answers with the virtual MAC"
    );
    assert_eq!(port.mac_for(Ipv4Addr::new(10, 77, 0, 2)), port.mac);
    assert!(port.has_vmac(&vmac));
    let sent = a.take_sent();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|(_, f)| f[6..12] == vmac),
        "adverts and GARPs from the VMAC"
    );
    let now = Duration::from_millis(1_000);
    a.speaker.shutdown(now, &mut a.tables, &a.cell, &a.io);
    if a.tables.needs_publish() {
        a.cell.publish(a.tables.snapshot());
    }
    assert!(
        a.cell.load().ports[0].vmacs.is_empty(),
        "given back with the addresses"
    );
}

// ----- a gateway group's instances, built from the control plane -----

use crate::overlay::gateway::{GatewayRole, GroupVrrp};
use crate::overlay::Overlay;
use crate::state::forwarding::StaticNeighbour;

const TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 100);
const SNAT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Gateway `me` (0 or 1) of a pair: ul0 10.88.0.2x/24, ext0 203.0.113.(2+me)/24, the other
/// one's addresses as static neighbours (unicast adverts need their MACs), and a speaker
/// without keepalived.conf unless `file` gives one.
fn gw_node(me: u8, file: Option<&str>) -> Node {
    let other = 1 - me;
    let port = |name: &str, a: String, m: u8| PortConfig {
        mac: Some([2, 0, 0, 0, m, 0xa + me]),
        addresses: vec![a.parse().unwrap()],
        ..PortConfig::new(name)
    };
    let mut tables = Tables::new(&ForwardingConfig {
        ports: vec![
            port("ul0", format!("10.88.0.{}/24", 21 + me), 1),
            port("ext0", format!("203.0.113.{}/24", 2 + me), 2),
        ],
        routes: Vec::new(),
        neighbours: vec![
            StaticNeighbour {
                port: 0,
                ip: ip(&format!("10.88.0.{}", 21 + other)),
                mac: [2, 0, 0, 0, 1, 0xa + other],
            },
            StaticNeighbour {
                port: 1,
                ip: ip(&format!("203.0.113.{}", 2 + other)),
                mac: [2, 0, 0, 0, 2, 0xa + other],
            },
        ],
    })
    .unwrap();
    let speaker = match file {
        Some(text) => {
            let setup = VrrpSetup {
                source: PathBuf::from("keepalived.conf"),
                imported: aegis_vrrp::keepalived::import(text).unwrap(),
            };
            VrrpSpeaker::new(&setup, &mut tables).unwrap()
        }
        None => VrrpSpeaker::for_host(None, true, &mut tables)
            .unwrap()
            .expect("a fed dataplane has a speaker"),
    };
    let cell = SnapshotCell::new(tables.snapshot());
    Node {
        speaker,
        tables,
        cell,
        io: Link::default(),
    }
}

/// Gateway `me`'s role in group `gw` (VRID 71, v3 at 100 ms, unicast to the other one),
/// with `priority`.
fn role(me: u8, priority: u32) -> GatewayRole {
    let other = 1 - me;
    GatewayRole {
        group: "gw".into(),
        external_addresses: vec![(SNAT, 24), (ip("203.0.113.20"), 24)],
        external_port: 1,
        tunnel: Some(TUNNEL),
        underlay_port: 0,
        vrrp: GroupVrrp {
            vrid: 71,
            version: 3,
            interval_ms: 100,
            priority,
            preempt: true,
            preempt_delay_ms: 0,
            underlay_address: Some(ip(&format!("10.88.0.{}", 21 + me))),
            external_network: Some("203.0.113.0/24".parse().unwrap()),
            underlay_peers: vec![ip(&format!("10.88.0.{}", 21 + other))],
            external_peers: vec![ip(&format!("203.0.113.{}", 2 + other))],
            problems: Vec::new(),
        },
        ..GatewayRole::default()
    }
}

impl Node {
    /// The control plane's feed delivers `role` (a new overlay revision).
    fn feed(&mut self, revision: u64, role: Option<GatewayRole>) {
        self.tables.set_overlay(std::sync::Arc::new(Overlay {
            revision,
            gateway: role,
            ..Overlay::default()
        }));
    }
    fn instance(&self, name: &str) -> VrrpInstanceInfo {
        self.speaker
            .info(&self.tables)
            .instances
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }
    fn states(&self) -> Vec<(String, String)> {
        self.speaker
            .info(&self.tables)
            .instances
            .into_iter()
            .map(|i| (i.name, i.state))
            .collect()
    }
}

/// g1 (200) and g2 (100) fed group gw and run for a second.
fn gw_pair() -> (Node, Node) {
    let mut a = gw_node(0, None);
    let mut b = gw_node(1, None);
    a.start(Duration::ZERO);
    b.start(Duration::ZERO);
    a.feed(1, Some(role(0, 200)));
    b.feed(1, Some(role(1, 100)));
    run(&mut a, &mut b, 0, 1_000);
    (a, b)
}

#[test]
fn a_gateway_group_yields_a_tunnel_and_an_external_instance_in_one_sync_group() {
    let (a, b) = gw_pair();
    let t = a.instance("gw-tunnel");
    assert_eq!(
        (t.port.as_str(), t.vrid, t.version, t.interval, t.priority),
        ("ul0", 71, 3, Duration::from_millis(100), 200)
    );
    assert!(t.preempt);
    assert_eq!(t.peers, [ip("10.88.0.22")]);
    assert_eq!(t.addresses[0].to_string(), "10.88.0.100/32");
    assert_eq!(t.sync_group.as_deref(), Some("gateway-group:gw"));
    assert_eq!(t.source, "gateway-group gw");
    let e = a.instance("gw-external");
    assert_eq!((e.port.as_str(), e.vrid, e.priority), ("ext0", 71, 200));
    assert_eq!(e.peers, [ip("203.0.113.3")]);
    let addrs: Vec<String> = e.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["203.0.113.10/24", "203.0.113.20/24"]);
    assert_eq!(e.sync_group.as_deref(), Some("gateway-group:gw"));
    assert_eq!(b.instance("gw-external").priority, 100);
    // The higher priority is master of both, holding every address; b backs up and hears it
    // over unicast.
    assert_eq!(
        a.states(),
        [
            ("gw-tunnel".into(), "MASTER".into()),
            ("gw-external".into(), "MASTER".into())
        ]
    );
    assert_eq!(
        b.states(),
        [
            ("gw-tunnel".into(), "BACKUP".into()),
            ("gw-external".into(), "BACKUP".into())
        ]
    );
    assert!(a.cell.load().is_local_on(0, TUNNEL) && a.cell.load().is_local_on(1, SNAT));
    assert!(!b.cell.load().is_local_on(0, TUNNEL));
    assert_eq!(b.instance("gw-tunnel").master, Some(ip("10.88.0.21")));
    assert_eq!(b.instance("gw-external").master, Some(ip("203.0.113.2")));
    assert!(a.cell.load().ports[0].vrrp && a.cell.load().ports[1].vrrp);
    assert!(a.speaker.is_master("gw-external"));
    assert!(a.speaker.info(&a.tables).problems.is_empty());
}

#[test]
fn a_change_of_the_group_changes_only_what_changed() {
    let (mut a, mut b) = gw_pair();
    let trans = |n: &Node| {
        (
            n.instance("gw-tunnel").transitions,
            n.instance("gw-external").transitions,
        )
    };
    let (a0, b0) = (trans(&a), trans(&b));
    // A revision that changes nothing for a (another object changed): nothing moves.
    a.feed(2, Some(role(0, 200)));
    b.feed(2, Some(role(1, 100)));
    run(&mut a, &mut b, 1_000, 500);
    assert_eq!((trans(&a), trans(&b)), (a0, b0));
    // The interval: changed in place on both, no transition.
    let slow = |mut r: GatewayRole| {
        r.vrrp.interval_ms = 200;
        r
    };
    a.feed(3, Some(slow(role(0, 200))));
    b.feed(3, Some(slow(role(1, 100))));
    run(&mut a, &mut b, 1_500, 1_000);
    assert_eq!((trans(&a), trans(&b)), (a0, b0));
    assert_eq!(
        a.instance("gw-external").interval,
        Duration::from_millis(200)
    );
    assert_eq!(a.instance("gw-external").state, "MASTER");
    // b's priority raised above a's: b preempts (one transition each, per instance), a
    // is not reconfigured at all.
    b.feed(4, Some(slow(role(1, 250))));
    a.feed(4, Some(slow(role(0, 200))));
    run(&mut a, &mut b, 2_500, 1_500);
    assert_eq!(b.instance("gw-external").priority, 250);
    assert_eq!(
        b.states(),
        [
            ("gw-tunnel".into(), "MASTER".into()),
            ("gw-external".into(), "MASTER".into())
        ]
    );
    assert_eq!(
        a.states(),
        [
            ("gw-tunnel".into(), "BACKUP".into()),
            ("gw-external".into(), "BACKUP".into())
        ]
    );
    assert_eq!(trans(&a), (a0.0 + 1, a0.1 + 1));
    assert_eq!(trans(&b), (b0.0 + 1, b0.1 + 1));
    assert!(b.cell.load().is_local_on(0, TUNNEL) && !a.cell.load().is_local_on(0, TUNNEL));
    // The tunnel address removed from the group: b's tunnel instance stops (giving the
    // address up), the external one keeps its state and leaves the sync group alone.
    let mut r = slow(role(1, 250));
    r.tunnel = None;
    let ext_before = b.instance("gw-external").transitions;
    b.feed(5, Some(r));
    b.step(Duration::from_millis(4_000));
    assert_eq!(b.states(), [("gw-external".into(), "MASTER".into())]);
    assert_eq!(b.instance("gw-external").transitions, ext_before);
    assert!(!b.cell.load().is_local_on(0, TUNNEL));
    assert!(b.cell.load().is_local_on(1, SNAT));
    assert!(
        !b.cell.load().ports[0].vrrp,
        "ul0 runs no instance any more"
    );
    // Out of the group: everything stops, addresses given up.
    b.feed(6, None);
    b.step(Duration::from_millis(4_005));
    assert!(b.states().is_empty());
    assert!(!b.cell.load().is_local_on(1, SNAT));
}

#[test]
fn a_keepalived_conf_instance_with_the_groups_vrid_wins_and_says_so() {
    let file = "vrrp_instance VI_EXT {\n interface ext0\n version 3\n virtual_router_id 71\n \
                priority 150\n advert_int 0.1\n virtual_ipaddress {\n  203.0.113.10/24\n }\n}\n";
    let mut a = gw_node(0, Some(file));
    a.start(Duration::ZERO);
    a.feed(1, Some(role(0, 200)));
    a.step(Duration::from_millis(5));
    let info = a.speaker.info(&a.tables);
    assert_eq!(info.instances.len(), 1, "{info:?}");
    assert_eq!(info.instances[0].name, "VI_EXT");
    assert_eq!(
        info.instances[0].priority, 150,
        "the file's priority, not the group's"
    );
    assert_eq!(info.problems.len(), 1, "{info:?}");
    assert!(
        info.problems[0].starts_with(
            "keepalived.conf's vrrp_instance VI_EXT (VRID 71) serves gateway group gw (VRID 71): \
             the group's VRRP settings"
        ),
        "{}",
        info.problems[0]
    );
    // The group's addresses still go on the file's instance of the external port (as
    // before the group's VRRP was built): the floating IP is served by VI_EXT.
    let addrs: Vec<String> = info.instances[0]
        .addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(addrs, ["203.0.113.10/24", "203.0.113.20/24"]);
    // Another VRID in the file: both run side by side.
    let other = file.replace("virtual_router_id 71", "virtual_router_id 9");
    let mut b = gw_node(0, Some(&other));
    b.start(Duration::ZERO);
    b.feed(1, Some(role(0, 200)));
    b.step(Duration::from_millis(5));
    let names: Vec<String> = b.states().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["VI_EXT", "gw-tunnel", "gw-external"]);
    assert!(b.speaker.info(&b.tables).problems.is_empty());
    // The group's addresses are the generated instance's, not VI_EXT's.
    assert_eq!(b.instance("VI_EXT").addresses.len(), 1);
}

#[test]
fn a_group_that_cannot_run_here_is_a_problem_not_a_panic() {
    let mut a = gw_node(0, None);
    a.start(Duration::ZERO);
    let mut r = role(0, 200);
    r.vrrp.interval_ms = 105;
    a.feed(1, Some(r));
    a.step(Duration::from_millis(5));
    let info = a.speaker.info(&a.tables);
    assert!(info.instances.is_empty());
    assert_eq!(
        info.problems,
        [
            "gateway group gw: VRRP not started on this host: advert interval 105 ms is not a \
          multiple of 10 ms"
        ]
    );
    let mut r = role(0, 200);
    r.vrrp.version = 2;
    a.feed(2, Some(r));
    a.step(Duration::from_millis(10));
    let info = a.speaker.info(&a.tables);
    assert!(info.instances.is_empty());
    assert!(info.problems[0].contains("VRRPv2"), "{:?}", info.problems);
    // Fixed in the next revision: the instances start.
    a.feed(3, Some(role(0, 200)));
    a.step(Duration::from_millis(15));
    assert_eq!(a.states().len(), 2);
    assert!(a.speaker.info(&a.tables).problems.is_empty());
}
