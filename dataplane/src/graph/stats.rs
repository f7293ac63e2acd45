//! Per-worker counters: per-node calls/packets/clocks, drop reasons, and loop statistics.
//! Each worker is the only writer of its own counters (relaxed load + store, no lock
//! prefix); the admin API reads them from another thread.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{DropReason, RUNTIME_SLOTS};

/// Calls, packets and TSC clocks spent in one node.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Times the node ran on a non-empty frame.
    pub calls: AtomicU64,
    /// Packets it handled.
    pub packets: AtomicU64,
    /// TSC cycles spent in it.
    pub clocks: AtomicU64,
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerStats {
    /// Per runtime slot (graph nodes, then port-rx, port-tx).
    pub nodes: [NodeCounters; RUNTIME_SLOTS.len()],
    /// Per drop reason.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Loop iterations.
    pub polls: AtomicU64,
    /// Loop iterations that received nothing.
    pub idle_polls: AtomicU64,
    /// Sleeps taken by adaptive polling.
    pub sleeps: AtomicU64,
    /// Packets consumed by the dataplane itself (ARP replies to us, learned and freed).
    pub consumed: AtomicU64,
    /// ICMP errors generated.
    pub icmp_sent: AtomicU64,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_rate_limited: AtomicU64,
    /// Security-group denials per counter slot (see [`crate::overlay::secgroup::CounterSlots`]).
    pub sg_denies: Box<[AtomicU64]>,
    /// Entries in the worker's connection table, expired ones not yet swept included (a
    /// gauge the worker stores every poll).
    pub connections: AtomicU64,
    /// Entries the worker's connection table holds at most (stored once at start).
    pub connection_capacity: AtomicU64,
    /// NAT sessions in the worker's table, expired ones not yet swept included (a gauge the
    /// worker stores every poll; 0 without NAT).
    pub nat_sessions: AtomicU64,
    /// NAT sessions removed because a configuration change took away their floating IP or
    /// source NAT rule.
    pub nat_revoked: AtomicU64,
    /// Sessions the worker's NAT table holds at most (stored once at start; 0 without NAT).
    pub nat_capacity: AtomicU64,
}

/// Adds to a counter that only this thread writes: a plain load and store, no lock prefix.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            nodes: std::array::from_fn(|_| NodeCounters::default()),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            polls: AtomicU64::new(0),
            idle_polls: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            icmp_sent: AtomicU64::new(0),
            icmp_rate_limited: AtomicU64::new(0),
            sg_denies: (0..crate::overlay::secgroup::MAX_COUNTER_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            connections: AtomicU64::new(0),
            connection_capacity: AtomicU64::new(0),
            nat_sessions: AtomicU64::new(0),
            nat_revoked: AtomicU64::new(0),
            nat_capacity: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    /// Counts one dropped packet.
    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    /// Records one node call.
    #[inline(always)]
    pub fn node(&self, slot: usize, packets: u64, clocks: u64) {
        let n = &self.nodes[slot];
        bump(&n.calls, 1);
        bump(&n.packets, packets);
        bump(&n.clocks, clocks);
    }

    /// Count of drops for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }
}
