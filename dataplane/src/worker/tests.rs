//! The worker loop on in-memory queues: forwarding, injections, snapshot swaps releasing
//! held packets, refused transmits counted, and connection-table dumps (filter, limit,
//! counts, timeouts).

use std::sync::Arc;

use super::io::MemQueues;
use super::*;
use crate::nodes::tests::{ping, snapshot, H2_MAC};
use crate::state::SnapshotCell;
use crate::wire::arp;

fn worker(cell: &Arc<SnapshotCell>) -> (Worker<MemQueues>, WorkerHandle) {
    let h = WorkerHandle::new(0);
    let w = Worker::in_memory(2, &h, cell.reader());
    (w, h)
}

#[test]
fn forwards_a_burst_and_counts_io_stages() {
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let (mut w, h) = worker(&cell);
    for _ in 0..40 {
        w.queues_mut().rx[0].push_back(ping("10.0.2.2", 64));
    }
    assert_eq!(w.poll_once(), 32, "one burst per port per poll");
    assert_eq!(w.poll_once(), 8);
    assert_eq!(w.poll_once(), 0);
    let q = w.queues_mut();
    assert_eq!(q.tx[1].len(), 40);
    assert!(q.tx[1].iter().all(|f| f[0..6] == H2_MAC));
    let rx = &h.stats.nodes[crate::graph::SLOT_PORT_RX];
    assert_eq!(rx.packets.load(std::sync::atomic::Ordering::Relaxed), 40);
    assert_eq!(
        h.stats
            .idle_polls
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn clocks_are_measured_on_one_poll_in_sixteen_and_weighted_packets_on_every_poll() {
    use crate::graph::stats::ClockSampling;
    use crate::graph::{NodeId, SLOT_PORT_RX};
    use std::sync::atomic::Ordering::Relaxed;
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let (mut w, h) = worker(&cell);
    let node = |slot: usize| {
        let n = &h.stats.nodes[slot];
        (n.packets.load(Relaxed), n.clocks.load(Relaxed))
    };
    let eth = NodeId::EthInput as usize;
    // Poll 1 is measured: its clocks count EVERY times over.
    w.queues_mut().rx[0].push_back(ping("10.0.2.2", 64));
    assert_eq!(w.poll_once(), 1);
    let (packets, first) = node(eth);
    assert_eq!(packets, 1);
    assert!(first > 0, "a measured poll has clocks");
    assert_eq!(
        first % ClockSampling::EVERY,
        0,
        "weighted by {}",
        ClockSampling::EVERY
    );
    let (rx_packets, rx_clocks) = node(SLOT_PORT_RX);
    assert_eq!(rx_packets, 1);
    assert!(rx_clocks > 0);
    // Polls 2..=16 are not measured, but their packets are counted.
    for _ in 1..ClockSampling::EVERY {
        w.queues_mut().rx[0].push_back(ping("10.0.2.2", 64));
        assert_eq!(w.poll_once(), 1);
    }
    assert_eq!(node(eth), (ClockSampling::EVERY, first));
    assert_eq!(node(SLOT_PORT_RX), (ClockSampling::EVERY, rx_clocks));
    // Poll 17 is measured again.
    w.queues_mut().rx[0].push_back(ping("10.0.2.2", 64));
    assert_eq!(w.poll_once(), 1);
    let (packets, clocks) = node(eth);
    assert_eq!(packets, ClockSampling::EVERY + 1);
    assert!(clocks > first);
    assert_eq!(
        w.queues_mut().tx[1].len(),
        ClockSampling::EVERY as usize + 1
    );
}

#[test]
fn injected_frames_are_sent() {
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let (mut w, h) = worker(&cell);
    let f = arp::request_frame([2, 0, 0, 0, 1, 1], 0x0a000201, 0x0a000208).to_vec();
    h.inject
        .push(Injection {
            port: 1,
            frame: f.clone(),
        })
        .unwrap();
    w.poll_once();
    assert_eq!(w.queues_mut().tx[1], vec![f]);
}

#[test]
fn refused_transmits_are_counted() {
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let (mut w, h) = worker(&cell);
    w.queues_mut().tx_room = Some(3);
    for _ in 0..5 {
        w.queues_mut().rx[0].push_back(ping("10.0.2.2", 64));
    }
    w.poll_once();
    assert_eq!(w.queues_mut().tx[1].len(), 3);
    assert_eq!(h.stats.drops_for(DropReason::TxQueueFull), 2);
}

#[test]
fn publishing_a_resolved_neighbour_releases_held_packets() {
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let (mut w, h) = worker(&cell);
    w.queues_mut().rx[0].push_back(ping("10.8.1.1", 64));
    w.poll_once();
    assert!(w.queues_mut().tx[1].is_empty());
    assert_eq!(
        h.events.pop(),
        Some(ControlEvent::NeighbourMiss {
            port: 1,
            ip: 0x0a000208
        })
    );
    let mut s = snapshot();
    let mut n = (*s.neighbours).clone();
    n.insert((1, 0x0a000208), [2, 0, 0, 0, 1, 8]);
    s.neighbours = Arc::new(n);
    s.revision = 2;
    cell.publish(Arc::new(s));
    w.poll_once();
    let tx = &w.queues_mut().tx[1];
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0][0..6], [2, 0, 0, 0, 1, 8]);
}

#[test]
fn clock_converts_ticks_to_nanoseconds_without_drift() {
    fn ticks() -> u64 {
        3_000_000_000 * 3600 // one hour at 3 GHz
    }
    let c = Clock::new(ticks, 3_000_000_000);
    let ns = c.now_ns();
    assert!(
        (3_600_000_000_000 - 1_000..=3_600_000_000_000).contains(&ns),
        "{ns}"
    );
}

/// Host a of the overlay testkit on a worker over in-memory queues (port 0 underlay, 1 and 2
/// VM ports), after b1 (port 1) opened five connection-table entries: ICMP and TCP to b3
/// (port 2, on this host: tracked in both zones) and ICMP to b2 (another host: zone 1 only).
fn overlay_worker_with_connections() -> (Worker<MemQueues>, WorkerHandle) {
    use crate::overlay::ROUTER_MAC;
    use crate::testkit::overlay::{echo, host_snapshot, objects, tcp, vm_frame, B1_MAC};
    use crate::wire::ipv4::{PROTO_ICMP, PROTO_TCP};

    let cell = SnapshotCell::new(Arc::new(host_snapshot("a", &objects())));
    let h = WorkerHandle::new(3);
    let mut w = Worker::in_memory(3, &h, cell.reader());
    let frames = [
        vm_frame(
            B1_MAC,
            ROUTER_MAC,
            "10.1.1.11",
            "10.1.2.13",
            PROTO_ICMP,
            &echo(9),
        ),
        vm_frame(
            B1_MAC,
            ROUTER_MAC,
            "10.1.1.11",
            "10.1.2.13",
            PROTO_TCP,
            &tcp(40000, 22, crate::wire::tcp::SYN),
        ),
        vm_frame(
            B1_MAC,
            ROUTER_MAC,
            "10.1.1.11",
            "10.1.1.12",
            PROTO_ICMP,
            &echo(7),
        ),
    ];
    w.queues_mut().rx[1].extend(frames);
    w.poll_once();
    let q = w.queues_mut();
    assert_eq!(
        (q.tx[0].len(), q.tx[2].len()),
        (1, 2),
        "all three forwarded"
    );
    (w, h)
}

/// Asks `w` for a dump, lets it poll once, returns the answer.
fn dump_of(
    w: &mut Worker<MemQueues>,
    h: &WorkerHandle,
    f: dump::ConnFilter,
    limit: usize,
) -> dump::ConnDump {
    let rx = dump::ask(&h.dumps, f, limit).unwrap();
    w.poll_once();
    let mut got = dump::collect(vec![Ok(rx)], std::time::Duration::from_secs(1));
    got.pop().unwrap().unwrap()
}

#[test]
fn connection_dumps_filter_limit_and_count() {
    use crate::conntrack::{ConnState, PROTO_TCP};
    use dump::ConnFilter;
    use std::sync::atomic::Ordering::Relaxed;

    let (mut w, h) = overlay_worker_with_connections();
    assert_eq!(h.stats.connections.load(Relaxed), 5);
    assert!(h.stats.connection_capacity.load(Relaxed) >= 1024);

    let all = dump_of(&mut w, &h, ConnFilter::default(), 100);
    assert_eq!((all.entries, all.matched, all.connections.len()), (5, 5, 5));
    assert_eq!(all.capacity, h.stats.connection_capacity.load(Relaxed));
    let zone2 = ConnFilter {
        zone: Some(2),
        ..ConnFilter::default()
    };
    let d = dump_of(&mut w, &h, zone2, 100);
    assert_eq!((d.entries, d.matched), (5, 2));
    assert!(d.connections.iter().all(|c| c.flow.zone == 2));
    let tcp = ConnFilter {
        proto: Some(PROTO_TCP),
        state: Some(ConnState::TcpSynSent),
        ..ConnFilter::default()
    };
    let d = dump_of(&mut w, &h, tcp, 100);
    assert_eq!(d.matched, 2);
    let c = d.connections[0];
    assert_eq!((c.flow.sport, c.flow.dport), (40000, 22));
    assert_eq!(c.flow.src, u32::from(std::net::Ipv4Addr::new(10, 1, 1, 11)));
    assert_eq!((c.packets, c.bytes[1]), ([1, 0], 0));
    assert!(c.expires_in_ns > 0 && c.expires_in_ns <= 30_000_000_000);
    let b2 = ConnFilter {
        ip: Some(u32::from(std::net::Ipv4Addr::new(10, 1, 1, 12))),
        ..ConnFilter::default()
    };
    let d = dump_of(&mut w, &h, b2, 100);
    assert_eq!((d.matched, d.connections[0].flow.zone), (1, 1));
    // A limit bounds what is copied, never the counts.
    let d = dump_of(&mut w, &h, ConnFilter::default(), 2);
    assert_eq!((d.entries, d.matched, d.connections.len()), (5, 5, 2));
    let d = dump_of(&mut w, &h, zone2, 0);
    assert_eq!((d.matched, d.connections.len()), (2, 0));
}

#[test]
fn a_worker_that_does_not_poll_times_out_and_a_full_queue_is_busy() {
    use dump::{ConnFilter, DumpError};
    use std::time::{Duration, Instant};

    let (mut w, h) = overlay_worker_with_connections();
    let t0 = Instant::now();
    let asked = vec![
        dump::ask(&h.dumps, ConnFilter::default(), 10),
        dump::ask(&h.dumps, ConnFilter::default(), 10),
    ];
    let got = dump::collect(asked, Duration::from_millis(50));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "one deadline for all"
    );
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|g| *g == Err(DumpError::Timeout(Duration::from_millis(50)))));
    for _ in 2..dump::DUMP_QUEUE {
        dump::ask(&h.dumps, ConnFilter::default(), 10).unwrap();
    }
    assert_eq!(
        dump::ask(&h.dumps, ConnFilter::default(), 10).err(),
        Some(DumpError::Busy)
    );
    // The worker answers the abandoned requests into the void and empties its queue.
    w.poll_once();
    assert!(h.dumps.is_empty());
    let d = dump_of(&mut w, &h, ConnFilter::default(), 10);
    assert_eq!(d.matched, 5);
}

/// A busy worker over three in-memory ports with a NAT table of 1,024 sessions, reading
/// `cell` (the gateway host g of the overlay testkit in the NAT tests).
fn gateway_worker(cell: &Arc<SnapshotCell>) -> (Worker<MemQueues>, WorkerHandle) {
    let h = WorkerHandle::new(0);
    let cfg = WorkerConfig {
        poll_mode: PollMode::Busy,
        burst: 32,
        connections: 64,
        nat_sessions: 1024,
    };
    let w = Worker::new(
        MemQueues::new(3),
        &h,
        cell.reader(),
        cfg,
        Clock::monotonic(),
    );
    (w, h)
}

/// Gateway host g of the overlay testkit on a worker with a NAT table: b3's TCP connection
/// through blue's source NAT and b1's ping through its floating IP leave, then the objects
/// change. A change that still grants both sessions keeps them; reassigning the floating
/// IP to b2 and removing the source NAT rule revokes them, so replies from outside no
/// longer reach b1 or b3 (the floating IP's reply opens a session to b2 instead).
#[test]
fn nat_sessions_whose_floating_ip_or_rule_is_taken_away_are_revoked() {
    use crate::overlay::ROUTER_MAC;
    use crate::testkit::overlay::*;
    use crate::wire::be16;
    use crate::wire::ipv4::{self, PROTO_ICMP, PROTO_TCP};
    use aegis_api::controlplane::v1::object::Spec;

    const INNER: usize = 50;
    let objects = gateway_objects();
    let cell = SnapshotCell::new(Arc::new(gateway_snapshot(&objects)));
    let (mut w, h) = gateway_worker(&cell);
    let mut a = HostPipeline::with_objects("a", &objects, 64);
    let syn = vm_frame(
        B3_MAC,
        ROUTER_MAC,
        "10.1.2.13",
        "203.0.113.50",
        PROTO_TCP,
        &tcp(40000, 80, crate::wire::tcp::SYN),
    );
    let ping = vm_frame(
        B1_MAC,
        ROUTER_MAC,
        "10.1.1.11",
        "203.0.113.50",
        PROTO_ICMP,
        &echo(77),
    );
    let wire = [one_out(&mut a, 2, syn, 0), one_out(&mut a, 1, ping, 0)];
    w.queues_mut().rx[0].extend(wire);
    w.poll_once();
    let out: Vec<Vec<u8>> = w.queues_mut().tx[1].drain(..).collect();
    assert_eq!(out.len(), 2, "both left by the external port");
    let srcs: Vec<u32> = out
        .iter()
        .map(|f| ipv4::Packet::new_checked(&f[14..]).unwrap().src())
        .collect();
    assert_eq!(srcs, [ip("203.0.113.10"), ip("203.0.113.20")]);
    let nat_port = be16(&out[0], 34);
    let gauge = |h: &WorkerHandle| {
        (
            h.stats.nat_sessions.load(Relaxed),
            h.stats.nat_revoked.load(Relaxed),
        )
    };
    assert_eq!(gauge(&h), (2, 0));
    assert_eq!(h.stats.nat_capacity.load(Relaxed), 1024);

    // `show nat-sessions` asks the worker: the floating IP's session, by its outside address.
    let filter = dump::NatFilter {
        ip: Some(ip("203.0.113.20")),
        ..dump::NatFilter::default()
    };
    let rx = dump::ask_nat(&h.dumps, filter, 10).unwrap();
    w.poll_once();
    let d = dump::collect(vec![Ok(rx)], std::time::Duration::from_secs(1))
        .remove(0)
        .unwrap();
    assert_eq!(
        (d.enabled, d.entries, d.matched, d.capacity),
        (true, 2, 1, 1024)
    );
    let r = &d.sessions[0];
    assert_eq!(
        (
            r.key.vpc,
            r.key.inside_ip,
            r.nat,
            r.outside_ip,
            r.outside_port
        ),
        (
            100,
            "10.1.1.11".parse().unwrap(),
            aegis_sessionsync::NatKind::FloatingIp,
            "203.0.113.20".parse().unwrap(),
            77
        )
    );
    let all = dump::dump_nat(
        w.env.nat.as_ref(),
        &dump::NatFilter::default(),
        1,
        w.clock.now_ns(),
    );
    assert_eq!((all.matched, all.sessions.len()), (2, 1), "the limit");
    assert_eq!(
        dump::dump_nat(None, &dump::NatFilter::default(), 10, 0),
        dump::NatDump::default(),
        "a worker without NAT"
    );

    // Replies from outside: where do they go now?
    let reply_snat = || {
        vm_frame(
            EXT_HOST_MAC,
            EXT_MAC_G,
            "203.0.113.50",
            "203.0.113.10",
            PROTO_TCP,
            &tcp(80, nat_port, crate::wire::tcp::SYN | crate::wire::tcp::ACK),
        )
    };
    let reply_fip = || {
        let mut r = echo(77);
        r[0] = 0; // echo reply
        vm_frame(
            EXT_HOST_MAC,
            EXT_MAC_G,
            "203.0.113.50",
            "203.0.113.20",
            PROTO_ICMP,
            &r,
        )
    };
    let inner_dsts = |w: &mut Worker<MemQueues>| -> Vec<u32> {
        w.queues_mut().tx[0]
            .drain(..)
            .map(|f| ipv4::Packet::new_checked(&f[INNER + 14..]).unwrap().dst())
            .collect()
    };

    // The same objects again (a new configuration that grants the same): nothing revoked.
    cell.publish(Arc::new(gateway_snapshot(&objects)));
    for _ in 0..3 {
        w.poll_once();
    }
    assert_eq!(gauge(&h), (2, 0));
    w.queues_mut().rx[1].extend([reply_snat(), reply_fip()]);
    w.poll_once();
    assert_eq!(
        inner_dsts(&mut w),
        [ip("10.1.2.13"), ip("10.1.1.11")],
        "still b3's and b1's"
    );

    // The floating IP moves to b2, blue's source NAT rule goes.
    let changed: Vec<_> = objects
        .iter()
        .filter(|o| o.name != "blue-out")
        .cloned()
        .map(|mut o| {
            if let Some(Spec::FloatingIp(f)) = o.spec.as_mut() {
                f.port = "b2".into();
            }
            o
        })
        .collect();
    cell.publish(Arc::new(gateway_snapshot(&changed)));
    // As if it had been published in the middle of a poll, after the poll's check for a
    // new snapshot: a later `get()` of that poll takes it, and the next poll sees no change.
    w.snap.get();
    assert!(!w.snap.changed());
    for _ in 0..3 {
        w.poll_once();
    }
    assert_eq!(gauge(&h), (0, 2), "both sessions revoked");
    w.queues_mut().rx[1].extend([reply_snat(), reply_fip()]);
    w.poll_once();
    let dsts = inner_dsts(&mut w);
    assert_eq!(
        dsts,
        [ip("10.1.1.12")],
        "the floating IP now leads to b2 only, the old SNAT port nowhere"
    );
}

/// A gateway taking over checks the sessions its old master streamed against its own NAT
/// configuration: a session whose rule this gateway no longer has (removed while the old
/// master had not seen the change yet) is revoked when it claims, as a sync delete; the
/// granted one stays. Until the claim the installs are kept as the master sent them.
#[test]
fn sessions_installed_from_the_master_are_checked_against_our_configuration_at_the_claim() {
    use crate::sync::{Install, SyncChannel};
    use crate::testkit::overlay::*;
    use aegis_sessionsync::{NatKind, Op, Record, SessionKey};
    use std::net::Ipv4Addr;

    let cell = SnapshotCell::new(Arc::new(gateway_snapshot(&gateway_objects())));
    let channel = Arc::new(SyncChannel::new(crate::sync::DEFAULT_UDP_PORT, 1));
    let (w, h) = gateway_worker(&cell);
    let mut w = w.with_sync(channel.clone());
    let record = |inside: [u8; 4], port: u16, nat: NatKind, outside: [u8; 4]| Record {
        op: Op::Add,
        key: SessionKey {
            vpc: 100,
            proto: 17,
            inside_ip: Ipv4Addr::from(inside),
            inside_port: port,
            remote_ip: Ipv4Addr::new(203, 0, 113, 50),
            remote_port: 53,
        },
        nat,
        outside_ip: Ipv4Addr::from(outside),
        outside_port: if nat == NatKind::FloatingIp {
            port
        } else {
            16_000 + port
        },
        state: 0,
        expires_in_ms: 60_000,
    };
    // b1's floating IP, which this gateway has; a source NAT rule to .99, which it has not.
    let granted = record([10, 1, 1, 11], 4000, NatKind::FloatingIp, [203, 0, 113, 20]);
    let stale = record(
        [10, 1, 1, 12],
        4001,
        NatKind::SnatEndpointDependent,
        [203, 0, 113, 99],
    );
    for r in [granted, stale] {
        channel.installs[0].push(Install::Upsert(r)).unwrap();
    }
    for _ in 0..3 {
        w.poll_once();
    }
    let gauge = |h: &WorkerHandle| {
        (
            h.stats.nat_sessions.load(Relaxed),
            h.stats.nat_revoked.load(Relaxed),
        )
    };
    assert_eq!(channel.install_failed.load(Relaxed), 0);
    assert_eq!(gauge(&h), (2, 0), "a backup keeps what its master sent");
    while channel.events.pop().is_some() {}

    channel.claimed();
    for _ in 0..3 {
        w.poll_once();
    }
    assert_eq!(gauge(&h), (1, 1), "the stale session revoked at the claim");
    let left = dump::dump_nat(
        w.env.nat.as_ref(),
        &dump::NatFilter::default(),
        10,
        w.clock.now_ns(),
    );
    assert_eq!(left.sessions.len(), 1);
    assert_eq!(left.sessions[0].key, granted.key);
    let deleted: Vec<Record> = std::iter::from_fn(|| channel.events.pop()).collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(
        (deleted[0].op, deleted[0].key),
        (Op::Delete, stale.key),
        "streamed to the backups as a delete"
    );
    // No further claim, no further pass.
    for _ in 0..3 {
        w.poll_once();
    }
    assert_eq!(gauge(&h), (1, 1));

    // A claim made while installs are still queued for the worker (a commit that timed
    // out) waits for them: the pass covers the slots they land in (here above the
    // table's high-water mark when the claim was seen).
    let late = [4002, 4003].map(|port| {
        record(
            [10, 1, 1, 12],
            port,
            NatKind::SnatEndpointDependent,
            [203, 0, 113, 99],
        )
    });
    for r in late {
        channel.installs[0].push(Install::Upsert(r)).unwrap();
    }
    channel.claimed();
    for _ in 0..3 {
        w.poll_once();
    }
    assert_eq!(gauge(&h), (1, 3), "both late installs checked");
}
