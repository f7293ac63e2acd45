//! Capture through the graph and the worker loop on heap buffers: drop captures carry the
//! reason the packet was counted under, rx and tx captures see the packets before and after
//! forwarding, node captures see a node's input frame (only the nodes asked for, each packet
//! once even across a hand-off between workers), the filter selects, and nothing is
//! captured once a capture stops.

use std::sync::Arc;

use super::bpf::tests::compile;
use super::*;
use crate::graph::{DropReason, NodeId};
use crate::nodes::tests::{ip_frame, ping, snapshot, Harness, MAC0};
use crate::state::SnapshotCell;
use crate::testkit::overlay::{tcp, vm_frame, HostPipeline, B1_MAC, B2_MAC};
use crate::worker::{Clock, Worker, WorkerHandle};
use tap::node_bit;

fn drops_only(filter: Program) -> CaptureSpec {
    CaptureSpec {
        rx_ports: 0,
        tx_ports: 0,
        drops: true,
        nodes: 0,
        filter,
        snaplen: RECORD_BYTES,
    }
}

fn records(ring: &CaptureRing) -> Vec<(Point, u16, Vec<u8>)> {
    let mut v = Vec::new();
    ring.drain(usize::MAX, |r| {
        v.push((r.point, r.port, r.bytes().to_vec()))
    });
    v
}

#[test]
fn drop_capture_carries_the_drop_reason() {
    let mut h = Harness::new();
    let ring = Arc::new(CaptureRing::new(64));
    h.graph.taps_mut().apply(TapCommand::Start {
        id: 1,
        spec: Arc::new(drops_only(Program::accept_all())),
        ring: ring.clone(),
    });
    let mut bad_sum = ping("10.0.2.2", 64);
    bad_sum[24] ^= 0xff; // the IPv4 header checksum
    let expired = ping("10.0.2.2", 1);
    let blackholed = ping("10.66.0.1", 64);
    let forwarded = ping("10.0.2.2", 64);
    let out = h.run(
        0,
        &[
            bad_sum.clone(),
            expired.clone(),
            blackholed.clone(),
            forwarded,
        ],
    );
    assert_eq!(out[1].len(), 1, "the good ping is forwarded");
    assert_eq!(h.drops(DropReason::Ip4BadChecksum), 1);
    let got = records(&ring);
    let reasons: Vec<Point> = got.iter().map(|r| r.0).collect();
    assert_eq!(
        reasons,
        vec![
            Point::Drop(DropReason::Ip4BadChecksum),
            Point::Drop(DropReason::RouteBlackhole),
            // Counted by ip4-icmp-error, which runs after ip4-forward.
            Point::Drop(DropReason::Ip4TtlExpired),
        ]
    );
    assert_eq!(got[0].2, bad_sum, "the packet as it was dropped");
    assert_eq!(got[1].2, blackholed);
    assert_eq!(
        got[2].2, expired,
        "captured before the ICMP error reuses it"
    );
    assert!(got.iter().all(|r| r.1 == u16::MAX));
}

#[test]
fn drop_capture_filter_and_stop() {
    let mut h = Harness::new();
    let ring = Arc::new(CaptureRing::new(64));
    let (udp_only, _) = compile("udp");
    h.graph.taps_mut().apply(TapCommand::Start {
        id: 7,
        spec: Arc::new(drops_only(udp_only)),
        ring: ring.clone(),
    });
    let udp = ip_frame(MAC0, "10.0.1.2", "10.66.0.1", 64, 17, &[0; 12]);
    h.run(0, &[ping("10.66.0.1", 64), udp.clone()]);
    assert_eq!(
        records(&ring),
        vec![(
            Point::Drop(DropReason::RouteBlackhole),
            u16::MAX,
            udp.clone()
        )]
    );
    h.graph.taps_mut().apply(TapCommand::Stop { id: 7 });
    h.run(0, &[udp]);
    assert_eq!(h.drops(DropReason::RouteBlackhole), 3);
    assert!(records(&ring).is_empty(), "nothing after the stop");
}

#[test]
fn worker_captures_rx_and_tx_through_the_hub() {
    let cell = SnapshotCell::new(Arc::new(snapshot()));
    let handle = WorkerHandle::new(0);
    let mut w = Worker::in_memory(2, &handle, cell.reader());
    let hub = CaptureHub::new(vec![handle.captures.clone()], Clock::monotonic());
    let (icmp, _) = compile("icmp");
    let session = hub
        .start(CaptureSpec {
            rx_ports: 0b01,
            tx_ports: 0b10,
            drops: false,
            nodes: 0,
            filter: icmp,
            snaplen: 64,
        })
        .unwrap();
    w.poll_once(); // takes the start between bursts
    let echo = ping("10.0.2.2", 64);
    let udp = ip_frame(MAC0, "10.0.1.2", "10.0.2.2", 64, 17, &[0; 12]);
    for f in [&echo, &udp, &echo] {
        w.queues_mut().rx[0].push_back(f.clone());
    }
    w.poll_once();
    assert_eq!(w.queues_mut().tx[1].len(), 3, "all forwarded");
    let sent = w.queues_mut().tx[1][0].clone();
    let mut got = Vec::new();
    session.drain(99, |worker, r, wall| {
        got.push((
            worker,
            r.point,
            r.port,
            r.bytes().to_vec(),
            r.wire_len,
            wall,
        ))
    });
    let summary: Vec<_> = got.iter().map(|g| (g.1, g.2)).collect();
    assert_eq!(
        summary,
        vec![
            (Point::Rx, 0),
            (Point::Rx, 0),
            (Point::Tx, 1),
            (Point::Tx, 1)
        ],
        "the ICMP packets in on port 0 and out on port 1, not the UDP one"
    );
    // Snap length 64: the first 64 bytes, and the whole length.
    assert_eq!(got[0].3, echo[..64], "rx: as received");
    assert_eq!(got[2].3, sent[..64], "tx: as sent (TTL and MACs rewritten)");
    assert_ne!(got[0].3, got[2].3);
    assert_eq!(
        (got[0].4 as usize, got[2].4 as usize),
        (echo.len(), sent.len())
    );
    drop(session);
    w.poll_once();
    w.queues_mut().rx[0].push_back(echo);
    w.poll_once();
    assert!(!w.is_capturing(), "the stop reached the worker");
}

fn nodes_only(nodes: u32, filter: Program) -> Arc<CaptureSpec> {
    Arc::new(CaptureSpec {
        rx_ports: 0,
        tx_ports: 0,
        drops: false,
        nodes,
        filter,
        snaplen: RECORD_BYTES,
    })
}

#[test]
fn node_capture_sees_the_input_of_the_nodes_asked_for() {
    let mut h = Harness::new();
    let ring = Arc::new(CaptureRing::new(64));
    h.graph.taps_mut().apply(TapCommand::Start {
        id: 3,
        spec: nodes_only(node_bit(NodeId::Ip4Forward), Program::accept_all()),
        ring: ring.clone(),
    });
    let echo = ping("10.0.2.2", 64);
    let udp = ip_frame(MAC0, "10.0.1.2", "10.0.2.2", 64, 17, &[0; 12]);
    let local = ping("10.0.1.1", 64);
    let out = h.run(0, &[echo.clone(), udp.clone(), local.clone()]);
    assert_eq!(out[1].len(), 2, "forwarded as without capture");
    assert_eq!(out[0].len(), 1, "the echo reply");
    // The frames as ip4-forward got them (TTL not yet decremented), with their rx port;
    // nothing at the other nodes they crossed (ethernet-input; ip4-local and ip4-lookup
    // for the ping to the router's own address and its reply).
    assert_eq!(
        records(&ring),
        vec![
            (Point::Node(NodeId::Ip4Forward), 0, echo.clone()),
            (Point::Node(NodeId::Ip4Forward), 0, udp.clone()),
            (Point::Node(NodeId::Ip4Forward), 0, local),
        ]
    );
    assert_ne!(out[1][0], echo, "what left was rewritten after the capture");
    h.graph.taps_mut().apply(TapCommand::Stop { id: 3 });
    assert_eq!(h.graph.taps().nodes(), 0);
    h.run(0, &[echo]);
    assert!(records(&ring).is_empty(), "nothing after the stop");
}

#[test]
fn node_capture_filters_and_sees_what_the_dataplane_built() {
    let mut h = Harness::new();
    let ring = Arc::new(CaptureRing::new(64));
    let (icmp, _) = compile("icmp");
    let nodes = node_bit(NodeId::Ip4IcmpError) | node_bit(NodeId::Ip4Lookup);
    h.graph.taps_mut().apply(TapCommand::Start {
        id: 4,
        spec: nodes_only(nodes, icmp),
        ring: ring.clone(),
    });
    let expired = ping("10.0.2.2", 1);
    let udp_expired = ip_frame(MAC0, "10.0.1.2", "10.0.2.2", 1, 17, &[0; 12]);
    let out = h.run(0, &[expired.clone(), udp_expired]);
    assert_eq!(out[0].len(), 2, "two time-exceeded errors back to h1");
    let got = records(&ring);
    // ip4-icmp-error's input: the expired ping as received (the UDP one fails the filter);
    // ip4-lookup's input: the two errors the dataplane built, each an Ethernet frame
    // carrying ICMP (so both pass), on the port the packets they answer came in on.
    let points: Vec<(Point, u16)> = got.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        points,
        vec![
            (Point::Node(NodeId::Ip4IcmpError), 0),
            (Point::Node(NodeId::Ip4Lookup), 0),
            (Point::Node(NodeId::Ip4Lookup), 0),
        ]
    );
    assert_eq!(got[0].2, expired);
    for r in &got[1..] {
        assert_eq!(crate::wire::be16(&r.2, 12), 0x0800, "Ethernet, then IPv4");
        assert_eq!((r.2[14 + 9], r.2[14 + 20]), (1, 11), "ICMP time exceeded");
    }
}

#[test]
fn a_packet_handed_to_its_flows_worker_is_offered_once_at_security_group() {
    use crate::graph::Handoff;
    let rings = Handoff::rings(2, 64);
    let mut w = [HostPipeline::new("a", 1024), HostPipeline::new("a", 1024)];
    let caps = [
        Arc::new(CaptureRing::new(64)),
        Arc::new(CaptureRing::new(64)),
    ];
    for (i, h) in w.iter_mut().enumerate() {
        h.graph.set_handoff(i, rings.clone());
        h.graph.taps_mut().apply(TapCommand::Start {
            id: 9,
            spec: nodes_only(node_bit(NodeId::SecurityGroup), Program::accept_all()),
            ring: caps[i].clone(),
        });
    }
    let (mut handed, mut kept) = (0, 0);
    for sport in 40000..40016u16 {
        let syn = vm_frame(
            B1_MAC,
            B2_MAC,
            "10.1.1.11",
            "10.1.1.12",
            6,
            &tcp(sport, 22, crate::wire::tcp::SYN),
        );
        w[0].run(1, std::slice::from_ref(&syn));
        if w[1].graph.accept_handoff() == 1 {
            handed += 1;
            w[1].run(1, &[]);
        } else {
            kept += 1;
        }
        let mut got = records(&caps[0]);
        got.extend(records(&caps[1]));
        assert_eq!(
            got,
            vec![(Point::Node(NodeId::SecurityGroup), 1, syn)],
            "sport {sport}: once, by the worker that received it"
        );
    }
    assert!(
        handed > 0 && kept > 0,
        "both cases: {handed} handed, {kept} kept"
    );
}
