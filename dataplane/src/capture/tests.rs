//! Capture through the graph and the worker loop on heap buffers: drop captures carry the
//! reason the packet was counted under, rx and tx captures see the packets before and after
//! forwarding, the filter selects, and nothing is captured once a capture stops.

use std::sync::Arc;

use super::bpf::tests::compile;
use super::*;
use crate::graph::DropReason;
use crate::nodes::tests::{ip_frame, ping, snapshot, Harness, MAC0};
use crate::state::SnapshotCell;
use crate::worker::{Clock, Worker, WorkerHandle};

fn drops_only(filter: Program) -> CaptureSpec {
    CaptureSpec {
        rx_ports: 0,
        tx_ports: 0,
        drops: true,
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
