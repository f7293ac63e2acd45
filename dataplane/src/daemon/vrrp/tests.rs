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
