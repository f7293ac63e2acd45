//! The control loop (tokio, off the workers' cores): turns worker events into neighbour
//! table updates, runs the neighbour timers, sends the ARP requests the table asks for
//! through worker 0's injection queue, and publishes a new snapshot whenever the tables
//! changed, and drives the VRRP speaker ([`super::vrrp`]) when the host runs one. It wakes
//! every few milliseconds; workers never wait for it.

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
    if let Some(v) = &backend.vrrp {
        let mut t = backend
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut v = v.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(io) = backend.vrrp_io() {
            v.start(backend.started.elapsed(), &mut t, &backend.cell, &io);
        }
    }
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        step(&backend);
        rounds += 1;
        if rounds.is_multiple_of(200) {
            backend.cell.reclaim();
        }
    }
}

/// Stops the VRRP instances (masters send priority 0 and give their addresses up); the
/// caller lets the workers send that before stopping them.
pub fn shutdown_vrrp(b: &DaemonBackend) {
    let (Some(v), Some(io)) = (&b.vrrp, b.vrrp_io()) else {
        return;
    };
    let mut t = b.tables.lock().unwrap_or_else(PoisonError::into_inner);
    v.lock().unwrap_or_else(PoisonError::into_inner).shutdown(
        b.started.elapsed(),
        &mut t,
        &b.cell,
        &io,
    );
}

/// One round of the loop (public for tests).
pub fn step(b: &DaemonBackend) {
    let now = b.started.elapsed();
    b.traces
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain();
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
                ControlEvent::Vrrp(frame) => {
                    if let Some(v) = &b.vrrp {
                        v.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .receive(now, &frame);
                    }
                }
            }
        }
    }
    if let (Some(v), Some(io)) = (&b.vrrp, b.vrrp_io()) {
        let mut v = v.lock().unwrap_or_else(PoisonError::into_inner);
        v.step(now, &mut t, &b.cell, &io);
        if let Some(s) = &b.sync {
            // Lock order: vrrp, then sync (before_claim takes sync inside the VRRP step).
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            let master = v.is_master(s.vrrp_instance());
            s.set_master(master, now);
            s.settle(b.feed.as_ref().is_none_or(super::feed::Feed::current));
            // The control plane's choice of sync peers, once it has made one (its addresses
            // are the members' underlay addresses: used when sync runs on the underlay).
            let sync_port = s.port();
            s.apply_peers(
                t.overlay()
                    .gateway
                    .as_ref()
                    .filter(|g| g.underlay_port == sync_port)
                    .and_then(|g| g.sync.as_ref()),
            );
            s.step(now, &mut t, &io);
            // No failback before resync: a backup that has not completed its bulk
            // resync follows a lower-priority master instead of preempting it.
            v.set_preempt_hold(!s.synced());
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
