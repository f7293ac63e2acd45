//! Tables tests: building from a configuration, validation messages, atomicity of refused
//! changes, gateway resolution, neighbour integration and snapshot sharing.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::state::{RouteKind, RouteOrigin};

const GW_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn addr(s: &str) -> IfAddr {
    s.parse().unwrap()
}

fn port(name: &str, addrs: &[&str]) -> PortConfig {
    PortConfig {
        mac: Some([0x02, 0, 0, 0, 1, name.len() as u8]),
        addresses: addrs.iter().map(|a| addr(a)).collect(),
        ..PortConfig::new(name)
    }
}

fn route(prefix: &str, target: RouteTarget) -> RouteConfig {
    RouteConfig {
        prefix: pfx(prefix),
        target,
    }
}

/// eth0 10.0.1.1/24, eth1 10.0.2.1/24 and one route of every kind.
fn config() -> ForwardingConfig {
    ForwardingConfig {
        ports: vec![
            port("eth0", &["10.0.1.1/24"]),
            port("eth1", &["10.0.2.1/24"]),
        ],
        routes: vec![
            route("10.9.0.0/16", RouteTarget::Via(ip("10.0.1.2"))),
            route("10.8.0.0/16", RouteTarget::Via(ip("10.0.1.2"))),
            route("0.0.0.0/0", RouteTarget::Via(ip("10.0.2.254"))),
            route("192.168.0.0/16", RouteTarget::Port(1)),
            route("10.66.0.0/16", RouteTarget::Blackhole),
            route("10.77.0.0/16", RouteTarget::Unreachable),
        ],
        neighbours: vec![],
    }
}

fn tables() -> Tables {
    Tables::new(&config()).unwrap()
}

/// The adjacency the snapshot gives for `dst`.
fn resolve(snap: &Snapshot, dst: &str) -> Option<Adjacency> {
    let nh = snap.fib.lookup(u32::from(ip(dst)))?;
    Some(snap.adjacencies[nh as usize])
}

fn routes_text(t: &Tables) -> Vec<String> {
    t.route_entries().iter().map(ToString::to_string).collect()
}

/// Asserts that `change` fails with `message` and leaves the tables as they were.
fn refused(
    t: &mut Tables,
    message: &str,
    change: impl FnOnce(&mut Tables) -> Result<u64, StateError>,
) {
    let before = (
        t.revision(),
        routes_text(t),
        t.config(),
        t.adjacency_count(),
    );
    let err = change(t).unwrap_err();
    assert_eq!(err.to_string(), message);
    let after = (
        t.revision(),
        routes_text(t),
        t.config(),
        t.adjacency_count(),
    );
    assert_eq!(before, after, "a refused change changed something");
}

#[test]
fn builds_every_kind_of_route() {
    let mut t = tables();
    assert_eq!(t.revision(), 1);
    assert!(t.needs_publish());
    let s = t.snapshot();
    assert!(!t.needs_publish());
    assert_eq!(s.revision, 1);
    assert_eq!(resolve(&s, "10.0.1.1"), Some(Adjacency::Local));
    assert_eq!(
        resolve(&s, "10.0.1.77"),
        Some(Adjacency::Attached { port: 0 })
    );
    assert_eq!(
        resolve(&s, "10.0.2.77"),
        Some(Adjacency::Attached { port: 1 })
    );
    let via = Adjacency::Gateway {
        port: 0,
        gw: ip("10.0.1.2"),
        mac: None,
    };
    assert_eq!(resolve(&s, "10.9.1.1"), Some(via));
    assert_eq!(resolve(&s, "10.8.1.1"), Some(via));
    assert_eq!(
        s.fib.lookup(u32::from(ip("10.9.1.1"))),
        s.fib.lookup(u32::from(ip("10.8.1.1"))),
        "routes via one gateway share one adjacency"
    );
    assert_eq!(
        resolve(&s, "8.8.8.8"),
        Some(Adjacency::Gateway {
            port: 1,
            gw: ip("10.0.2.254"),
            mac: None
        })
    );
    assert_eq!(
        resolve(&s, "192.168.3.3"),
        Some(Adjacency::Attached { port: 1 })
    );
    assert_eq!(resolve(&s, "10.66.0.1"), Some(Adjacency::Blackhole));
    assert_eq!(resolve(&s, "10.77.0.1"), Some(Adjacency::Unreachable));
    assert_eq!(s.ports.len(), 2);
    assert_eq!(s.ports[1].name, "eth1");
    assert_eq!(s.ports[1].addrs, vec![(ip("10.0.2.1"), 24)]);
    assert!(s.is_local_on(0, ip("10.0.1.1")));
    // Local, attached×2 (eth0, eth1), 2 gateways, blackhole, unreachable.
    assert_eq!(t.adjacency_count(), 7);
}

#[test]
fn lists_routes_with_rendered_adjacencies() {
    let t = tables();
    assert_eq!(
        routes_text(&t),
        [
            "0.0.0.0/0 via 10.0.2.254 dev eth1 static",
            "10.0.1.0/24 dev eth0 connected",
            "10.0.1.1/32 local dev eth0 connected",
            "10.0.2.0/24 dev eth1 connected",
            "10.0.2.1/32 local dev eth1 connected",
            "10.8.0.0/16 via 10.0.1.2 dev eth0 static",
            "10.9.0.0/16 via 10.0.1.2 dev eth0 static",
            "10.66.0.0/16 blackhole static",
            "10.77.0.0/16 unreachable static",
            "192.168.0.0/16 dev eth1 static",
        ]
    );
    let e = &t.route_entries()[0];
    assert_eq!(
        (e.kind, e.origin, e.port),
        (RouteKind::Gateway, RouteOrigin::Static, Some(1))
    );
    assert_eq!(e.next_hop, Some(ip("10.0.2.254")));
}

#[test]
fn route_validation_messages() {
    let mut t = tables();
    refused(
        &mut t,
        "route 10.0.0.0/8: gateway 10.9.9.9 is not on any connected subnet",
        |t| t.add_route(pfx("10.0.0.0/8"), RouteTarget::Via(ip("10.9.9.9"))),
    );
    refused(
        &mut t,
        "route 10.0.0.0/8: gateway 10.0.1.1 is our own address on eth0",
        |t| t.add_route(pfx("10.0.0.0/8"), RouteTarget::Via(ip("10.0.1.1"))),
    );
    refused(
        &mut t,
        "route 10.0.0.0/8: gateway 10.0.1.255 is the broadcast address of 10.0.1.0/24",
        |t| t.add_route(pfx("10.0.0.0/8"), RouteTarget::Via(ip("10.0.1.255"))),
    );
    refused(
        &mut t,
        "route 10.9.0.0/16 already exists (via 10.0.1.2)",
        |t| t.add_route(pfx("10.9.0.0/16"), RouteTarget::Blackhole),
    );
    refused(&mut t, "port 7 does not exist (there are 2 ports)", |t| {
        t.add_route(pfx("10.0.0.0/8"), RouteTarget::Port(7))
    });
    refused(
        &mut t,
        "route 10.0.1.0/24 conflicts with the connected subnet on eth0",
        |t| t.add_route(pfx("10.0.1.0/24"), RouteTarget::Blackhole),
    );
    refused(
        &mut t,
        "route 10.0.2.1/32 conflicts with our own address on eth1",
        |t| t.add_route(pfx("10.0.2.1/32"), RouteTarget::Blackhole),
    );
    refused(&mut t, "route 10.5.0.0/16 does not exist", |t| {
        t.del_route(pfx("10.5.0.0/16"))
    });
}

#[test]
fn route_changes_apply_and_release_adjacencies() {
    let mut t = tables();
    let r = t
        .add_route(pfx("172.16.0.0/12"), RouteTarget::Via(ip("10.0.2.9")))
        .unwrap();
    assert_eq!(r, 2);
    assert_eq!(t.adjacency_count(), 8);
    let s = t.snapshot();
    assert!(matches!(
        resolve(&s, "172.20.0.1"),
        Some(Adjacency::Gateway { port: 1, .. })
    ));
    // Replace: same prefix, new target; the old gateway adjacency goes away.
    t.replace_route(pfx("172.16.0.0/12"), RouteTarget::Unreachable)
        .unwrap();
    assert_eq!(t.adjacency_count(), 7);
    assert_eq!(
        resolve(&t.snapshot(), "172.20.0.1"),
        Some(Adjacency::Unreachable)
    );
    // The old snapshot still answers as before (it owns its copy-on-write FIB).
    assert!(matches!(
        resolve(&s, "172.20.0.1"),
        Some(Adjacency::Gateway { port: 1, .. })
    ));
    // Delete the default route: unknown destinations now miss.
    t.del_route(Prefix::DEFAULT).unwrap();
    assert_eq!(resolve(&t.snapshot(), "8.8.8.8"), None);
    assert_eq!(t.adjacency_count(), 6);
    assert_eq!(t.revision(), 4);
}

#[test]
fn address_validation_messages() {
    let mut t = tables();
    refused(&mut t, "address 10.0.1.1/24 already on eth0", |t| {
        t.add_address(0, addr("10.0.1.1/24"))
    });
    refused(&mut t, "address 10.0.1.1/16 already on eth0", |t| {
        t.add_address(1, addr("10.0.1.1/16"))
    });
    refused(
        &mut t,
        "address 10.0.2.7/24 on eth0: subnet 10.0.2.0/24 is already connected on eth1",
        |t| t.add_address(0, addr("10.0.2.7/24")),
    );
    refused(
        &mut t,
        "address 10.66.0.1/16 on eth0: 10.66.0.0/16 is already static route 10.66.0.0/16 blackhole",
        |t| t.add_address(0, addr("10.66.0.1/16")),
    );
    refused(
        &mut t,
        "address 10.0.1.2/16 on eth1: 10.0.1.2 is the gateway of route 10.8.0.0/16 via 10.0.1.2",
        |t| t.add_address(1, addr("10.0.1.2/16")),
    );
    refused(
        &mut t,
        "address 10.0.3.0/24 on eth0: 10.0.3.0 is the network address of 10.0.3.0/24",
        |t| t.add_address(0, addr("10.0.3.0/24")),
    );
    refused(&mut t, "address 10.0.3.1/24 is not on eth0", |t| {
        t.del_address(0, addr("10.0.3.1/24"))
    });
    refused(&mut t, "address 10.0.1.1/25 is not on eth0", |t| {
        t.del_address(0, addr("10.0.1.1/25"))
    });
}

#[test]
fn deleting_an_address_a_gateway_needs_is_refused_and_rolled_back() {
    let mut t = tables();
    let before = t.snapshot();
    refused(
        &mut t,
        "address 10.0.1.1/24 on eth0 is needed by route 10.8.0.0/16 via 10.0.1.2: its gateway would not be on any connected subnet",
        |t| t.del_address(0, addr("10.0.1.1/24")),
    );
    let after = t.snapshot();
    assert!(
        Arc::ptr_eq(&before.fib, &after.fib),
        "rollback restored the very same FIB"
    );
    // Without the gateway routes the address can go, taking its routes with it.
    t.del_route(pfx("10.8.0.0/16")).unwrap();
    t.del_route(pfx("10.9.0.0/16")).unwrap();
    t.del_address(0, addr("10.0.1.1/24")).unwrap();
    let s = t.snapshot();
    assert_eq!(
        resolve(&s, "10.0.1.1"),
        resolve(&s, "99.0.0.1"),
        "falls to the default"
    );
    assert!(s.ports[0].addrs.is_empty());
    assert!(!routes_text(&t).iter().any(|r| r.contains("10.0.1.")));
}

#[test]
fn secondary_addresses_share_the_connected_route() {
    let mut t = tables();
    t.add_address(0, addr("10.0.1.5/24")).unwrap();
    t.del_address(0, addr("10.0.1.1/24")).unwrap(); // 10.0.1.5 keeps the subnet (and the gateway)
    let s = t.snapshot();
    assert_eq!(resolve(&s, "10.0.1.5"), Some(Adjacency::Local));
    assert_eq!(
        resolve(&s, "10.0.1.1"),
        Some(Adjacency::Attached { port: 0 })
    );
    assert!(matches!(
        resolve(&s, "10.9.0.1"),
        Some(Adjacency::Gateway { port: 0, .. })
    ));
    assert_eq!(t.arp_source(0, ip("10.0.1.2")), Some(ip("10.0.1.5")));
}

#[test]
fn gateways_follow_the_most_specific_connected_subnet() {
    let mut t = Tables::new(&ForwardingConfig {
        ports: vec![port("eth0", &["10.0.0.1/16"]), port("eth1", &[])],
        routes: vec![route("10.9.0.0/16", RouteTarget::Via(ip("10.0.0.5")))],
        neighbours: vec![],
    })
    .unwrap();
    let gw_on = |t: &mut Tables| match resolve(&t.snapshot(), "10.9.0.1") {
        Some(Adjacency::Gateway { port, .. }) => port,
        other => panic!("{other:?}"),
    };
    assert_eq!(gw_on(&mut t), 0);
    t.add_address(1, addr("10.0.0.6/30")).unwrap();
    assert_eq!(gw_on(&mut t), 1);
    t.del_address(1, addr("10.0.0.6/30")).unwrap();
    assert_eq!(gw_on(&mut t), 0);
    assert_eq!(t.adjacency_count(), 3, "local, attached eth0, gateway");
}

#[test]
fn tbl8_exhaustion_changes_nothing() {
    let options = TablesOptions {
        tbl8_groups: 2,
        ..TablesOptions::default()
    };
    // Two /32 locals use both groups.
    let mut t = Tables::with_options(&config(), options).unwrap();
    refused(
        &mut t,
        "route 10.3.3.0/25: all 2 tbl8 groups are in use (too many /24s with longer routes)",
        |t| t.add_route(pfx("10.3.3.0/25"), RouteTarget::Blackhole),
    );
    refused(
        &mut t,
        "route 10.3.3.3/32: all 2 tbl8 groups are in use (too many /24s with longer routes)",
        |t| t.add_address(0, addr("10.3.3.3/24")),
    );
    // Inside an already split /24 there is room.
    t.add_route(pfx("10.0.1.128/25"), RouteTarget::Blackhole)
        .unwrap();
}

#[test]
fn port_changes() {
    let mut t = tables();
    let s1 = t.snapshot();
    assert_eq!(s1.ports[0].mac, [2, 0, 0, 0, 1, 4]);
    t.set_port_mac(0, [0x02, 0xaa, 0, 0, 0, 1]).unwrap();
    t.set_port_mtu(0, 9000).unwrap();
    t.set_port_up(1, false).unwrap();
    let r = t.revision();
    assert_eq!(
        t.set_port_up(1, false).unwrap(),
        r,
        "no-op changes keep the revision"
    );
    let s2 = t.snapshot();
    assert_eq!(s2.ports[0].mac, [0x02, 0xaa, 0, 0, 0, 1]);
    assert_eq!(s2.ports[0].mtu, 9000);
    assert!(!s2.ports[1].up);
    assert!(
        Arc::ptr_eq(&s1.fib, &s2.fib),
        "port changes do not touch the FIB"
    );
    refused(
        &mut t,
        "port eth0: MTU 67 is out of range (68..=9000)",
        |t| t.set_port_mtu(0, 67),
    );
    refused(
        &mut t,
        "port eth0: MAC 01:00:5e:00:00:01 is not a unicast address",
        |t| t.set_port_mac(0, [1, 0, 0x5e, 0, 0, 1]),
    );
    assert_eq!(t.port_index("eth1"), Ok(1));
    assert_eq!(
        t.port_index("eth9").unwrap_err().to_string(),
        "port \"eth9\" does not exist"
    );
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = config();
    c.ports[1].name = "eth0".into();
    assert_eq!(
        Tables::new(&c).unwrap_err().to_string(),
        "port 1: name \"eth0\" is already used by port 0"
    );
    let mut c = config();
    c.ports[0].mtu = 10_000;
    assert_eq!(
        Tables::new(&c).unwrap_err().to_string(),
        "port eth0: MTU 10000 is out of range (68..=9000)"
    );
    let mut c = config();
    c.routes
        .push(route("10.1.0.0/16", RouteTarget::Via(ip("10.0.3.1"))));
    assert_eq!(
        Tables::new(&c).unwrap_err().to_string(),
        "route 10.1.0.0/16: gateway 10.0.3.1 is not on any connected subnet"
    );
}

#[test]
fn config_round_trips() {
    let mut t = tables();
    t.add_neighbour(0, ip("10.0.1.9"), GW_MAC).unwrap();
    let again = Tables::new(&t.config()).unwrap();
    assert_eq!(routes_text(&again), routes_text(&t));
    assert_eq!(again.config(), t.config());
}

#[test]
fn gateways_are_resolved_and_snapshots_share_unchanged_parts() {
    let mut t = tables();
    let s1 = t.snapshot();
    // Gateways are pinned: the first tick asks for both.
    t.tick(Duration::ZERO);
    let mut asked: Vec<_> = std::iter::from_fn(|| t.poll_action()).collect();
    asked.sort_by_key(|a| match a {
        NeighbourAction::SendArpRequest { port, target_ip } => (*port, *target_ip),
    });
    assert_eq!(
        asked,
        [
            NeighbourAction::SendArpRequest {
                port: 0,
                target_ip: ip("10.0.1.2")
            },
            NeighbourAction::SendArpRequest {
                port: 1,
                target_ip: ip("10.0.2.254")
            },
        ]
    );
    assert_eq!(t.arp_source(1, ip("10.0.2.254")), Some(ip("10.0.2.1")));
    assert!(
        !t.needs_publish(),
        "probing alone changes nothing workers see"
    );

    assert!(t.learn(0, ip("10.0.1.2"), GW_MAC, Duration::from_millis(3), true));
    assert!(t.needs_publish());
    let s2 = t.snapshot();
    assert!(s2.revision > s1.revision);
    assert_eq!(
        resolve(&s2, "10.9.0.1"),
        Some(Adjacency::Gateway {
            port: 0,
            gw: ip("10.0.1.2"),
            mac: Some(GW_MAC)
        })
    );
    assert_eq!(s2.neighbour(0, u32::from(ip("10.0.1.2"))), Some(GW_MAC));
    assert!(
        Arc::ptr_eq(&s1.fib, &s2.fib),
        "a neighbour change does not copy the FIB"
    );
    assert!(Arc::ptr_eq(&s1.ports, &s2.ports));

    // A route change shares ports and neighbours but not the FIB.
    t.add_route(pfx("10.55.0.0/16"), RouteTarget::Blackhole)
        .unwrap();
    let s3 = t.snapshot();
    assert!(!Arc::ptr_eq(&s2.fib, &s3.fib));
    assert!(Arc::ptr_eq(&s2.ports, &s3.ports));
    assert!(Arc::ptr_eq(&s2.neighbours, &s3.neighbours));

    let n = t.neighbour_entries(Duration::from_secs(1));
    let gw = n.iter().find(|e| e.ip == ip("10.0.1.2")).unwrap();
    assert_eq!(
        gw.to_string(),
        "10.0.1.2 dev eth0 lladdr 02:00:00:00:00:02 reachable 0s"
    );
    assert!(gw.pinned);
}

#[test]
fn learning_and_requests_are_limited_to_the_port_links() {
    let mut t = tables();
    assert!(
        !t.learn(0, ip("10.0.2.7"), GW_MAC, Duration::ZERO, false),
        "other port's subnet"
    );
    assert!(
        !t.learn(0, ip("10.0.1.1"), GW_MAC, Duration::ZERO, false),
        "our own address"
    );
    assert!(
        !t.learn(0, ip("10.0.1.7"), [1, 2, 3, 4, 5, 6], Duration::ZERO, false),
        "multicast MAC"
    );
    assert!(
        !t.learn(5, ip("10.0.1.7"), GW_MAC, Duration::ZERO, false),
        "no such port"
    );
    assert!(!t.needs_publish() || t.revision() == 1);
    t.request(0, ip("8.8.8.8"), Duration::ZERO);
    assert_eq!(t.poll_action(), None);
    // A directly attached static route makes its destinations resolvable on its port.
    t.request(1, ip("192.168.4.4"), Duration::ZERO);
    assert_eq!(
        t.poll_action(),
        Some(NeighbourAction::SendArpRequest {
            port: 1,
            target_ip: ip("192.168.4.4")
        })
    );
    assert!(t.learn(1, ip("192.168.4.4"), GW_MAC, Duration::ZERO, true));
}

#[test]
fn static_neighbours() {
    let mut t = tables();
    let r = t.add_neighbour(1, ip("10.0.2.254"), GW_MAC).unwrap();
    assert_eq!(r, 2);
    let s = t.snapshot();
    assert_eq!(
        resolve(&s, "1.1.1.1"),
        Some(Adjacency::Gateway {
            port: 1,
            gw: ip("10.0.2.254"),
            mac: Some(GW_MAC)
        })
    );
    assert!(!t.learn(
        1,
        ip("10.0.2.254"),
        [2, 9, 9, 9, 9, 9],
        Duration::ZERO,
        true
    ));
    refused(
        &mut t,
        "neighbour 10.0.9.9 on eth1: 10.0.9.9 is not on any subnet of eth1",
        |t| t.add_neighbour(1, ip("10.0.9.9"), GW_MAC),
    );
    refused(
        &mut t,
        "neighbour 10.0.2.1 on eth1: 10.0.2.1 is our own address",
        |t| t.add_neighbour(1, ip("10.0.2.1"), GW_MAC),
    );
    refused(
        &mut t,
        "neighbour 10.0.2.9 on eth1: MAC ff:ff:ff:ff:ff:ff is not a unicast address",
        |t| t.add_neighbour(1, ip("10.0.2.9"), [0xff; 6]),
    );
    refused(&mut t, "no static neighbour 10.0.2.9 on eth1", |t| {
        t.del_neighbour(1, ip("10.0.2.9"))
    });
    t.del_neighbour(1, ip("10.0.2.254")).unwrap();
    assert_eq!(t.snapshot().neighbour(1, u32::from(ip("10.0.2.254"))), None);
}

#[test]
fn port_down_forgets_dynamic_neighbours() {
    let mut t = tables();
    t.learn(1, ip("10.0.2.254"), GW_MAC, Duration::ZERO, true);
    assert!(t
        .snapshot()
        .neighbour(1, u32::from(ip("10.0.2.254")))
        .is_some());
    t.set_port_up(1, false).unwrap();
    assert!(t
        .snapshot()
        .neighbour(1, u32::from(ip("10.0.2.254")))
        .is_none());
}
