//! The worker loop on in-memory queues: forwarding, injections, snapshot swaps releasing
//! held packets, and refused transmits counted.

use std::sync::Arc;

use super::io::MemQueues;
use super::*;
use crate::nodes::tests::{ping, snapshot, H2_MAC};
use crate::state::SnapshotCell;
use crate::wire::arp;

fn worker(cell: &Arc<SnapshotCell>) -> (Worker<MemQueues>, WorkerHandle) {
    let h = WorkerHandle::new(0);
    let cfg = WorkerConfig {
        poll_mode: PollMode::Busy,
        burst: 32,
        connections: 4096,
    };
    let w = Worker::new(
        MemQueues::new(2),
        &h,
        cell.reader(),
        cfg,
        Clock::monotonic(),
    );
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
