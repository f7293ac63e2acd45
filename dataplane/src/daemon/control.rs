//! The control loop (tokio, off the workers' cores): turns worker events into neighbour
//! table updates, runs the neighbour timers, sends the ARP requests the table asks for
//! through worker 0's injection queue, and publishes a new snapshot whenever the tables
//! changed. It wakes every few milliseconds; workers never wait for it.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::graph::ControlEvent;
use crate::state::NeighbourAction;
use crate::wire::arp;
use crate::worker::Injection;

use super::backend::DaemonBackend;

/// How often the loop runs.
pub const PERIOD: Duration = Duration::from_millis(5);

/// Runs until `stop` is set.
pub async fn run(backend: Arc<DaemonBackend>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rounds: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        step(&backend);
        rounds += 1;
        if rounds.is_multiple_of(200) {
            backend.cell.reclaim();
        }
    }
}

/// One round of the loop (public for tests).
pub fn step(b: &DaemonBackend) {
    let now = b.started.elapsed();
    let mut t = b.tables.lock().unwrap_or_else(PoisonError::into_inner);
    for (h, _) in &b.workers {
        while let Some(ev) = h.events.pop() {
            match ev {
                ControlEvent::NeighbourSeen {
                    port,
                    ip,
                    mac,
                    reply,
                } => {
                    t.learn(port, Ipv4Addr::from(ip), mac, now, reply);
                }
                ControlEvent::NeighbourMiss { port, ip } => {
                    t.request(port, Ipv4Addr::from(ip), now);
                }
            }
        }
    }
    t.tick(now);
    let snap = b.cell.load();
    while let Some(NeighbourAction::SendArpRequest { port, target_ip }) = t.poll_action() {
        let (Some(view), Some(src)) = (
            snap.ports.get(usize::from(port)),
            t.arp_source(port, target_ip),
        ) else {
            continue;
        };
        let frame = arp::request_frame(view.mac, u32::from(src), u32::from(target_ip)).to_vec();
        if let Some((h, _)) = b.workers.first() {
            if h.inject.push(Injection { port, frame }).is_err() {
                tracing::warn!(%target_ip, port, "injection queue full: ARP request not sent");
            }
        }
    }
    if t.needs_publish() {
        b.cell.publish(t.snapshot());
    }
}
