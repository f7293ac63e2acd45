//! Per-worker counters: per-node calls/packets/clocks, drop reasons, and loop statistics.
//! Each worker is the only writer of its own counters (relaxed load + store, no lock
//! prefix); the admin API reads them from another thread.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{DropReason, RUNTIME_SLOTS};
use crate::port::clock::rdtsc;

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

/// Which polls read the TSC for the per-node clocks. A TSC read costs ~20 clocks in these
/// guests, and a poll of a 32-packet burst through 5–7 nodes and two ports reads it a dozen
/// times: 3–7 % of a packet's time. So a worker measures one poll in
/// [`ClockSampling::EVERY`] and counts that poll's clocks that many times over (an
/// estimate of the total; calls and packets are always counted exactly). `show runtime`'s
/// clocks per packet are then the average over the sampled polls.
#[derive(Debug, Clone, Copy)]
pub struct ClockSampling {
    polls: u64,
}

impl ClockSampling {
    /// One poll in this many is measured.
    pub const EVERY: u64 = 16;

    /// Starts with a measured poll.
    pub const fn new() -> Self {
        ClockSampling { polls: 0 }
    }

    /// Advances to the next poll and returns its clock weight: [`ClockSampling::EVERY`]
    /// for a measured poll, 0 for the others.
    #[inline(always)]
    pub fn next_weight(&mut self) -> u64 {
        let w = if self.polls.is_multiple_of(Self::EVERY) {
            Self::EVERY
        } else {
            0
        };
        self.polls = self.polls.wrapping_add(1);
        w
    }
}

impl Default for ClockSampling {
    fn default() -> Self {
        Self::new()
    }
}

/// The start of one timed stretch of a poll: a TSC reading, taken only when the poll is
/// measured (`weight` > 0, from [`ClockSampling::next_weight`]).
#[derive(Debug, Clone, Copy)]
pub struct Lap {
    weight: u64,
    start: u64,
}

impl Lap {
    /// Starts a stretch of a poll of clock weight `weight` (reads the TSC only if > 0).
    #[inline(always)]
    pub fn start(weight: u64) -> Lap {
        let start = if weight > 0 { rdtsc() } else { 0 };
        Lap { weight, start }
    }

    /// Records one call of `slot` over `packets` that ran since this lap started (its
    /// clocks times the weight, or none on an unmeasured poll) and returns the lap that
    /// starts now.
    #[inline(always)]
    pub fn record(self, stats: &WorkerStats, slot: usize, packets: u64) -> Lap {
        if self.weight == 0 {
            stats.node_untimed(slot, packets);
            return self;
        }
        let now = rdtsc();
        let clocks = now.wrapping_sub(self.start).wrapping_mul(self.weight);
        stats.node(slot, packets, clocks);
        Lap {
            weight: self.weight,
            start: now,
        }
    }
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

    /// Records one node call whose clocks were not measured ([`ClockSampling`]: its share
    /// is in the weight of the calls that were).
    #[inline(always)]
    pub fn node_untimed(&self, slot: usize, packets: u64) {
        let n = &self.nodes[slot];
        bump(&n.calls, 1);
        bump(&n.packets, packets);
    }

    /// Count of drops for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_poll_in_every_is_measured_with_its_weight_starting_with_the_first() {
        let mut s = ClockSampling::new();
        let w: Vec<u64> = (0..2 * ClockSampling::EVERY)
            .map(|_| s.next_weight())
            .collect();
        let every = ClockSampling::EVERY as usize;
        for (i, w) in w.iter().enumerate() {
            let want = if i % every == 0 {
                ClockSampling::EVERY
            } else {
                0
            };
            assert_eq!(*w, want, "poll {i}");
        }
        // The weights add up to the number of polls: the estimate is unbiased.
        assert_eq!(w.iter().sum::<u64>(), w.len() as u64);
    }

    #[test]
    fn an_untimed_call_counts_its_packets_but_no_clocks() {
        let s = WorkerStats::default();
        s.node(0, 32, 640);
        s.node_untimed(0, 32);
        let n = &s.nodes[0];
        assert_eq!(n.calls.load(Relaxed), 2);
        assert_eq!(n.packets.load(Relaxed), 64);
        assert_eq!(n.clocks.load(Relaxed), 640);
    }

    #[test]
    fn a_lap_records_weighted_clocks_only_on_a_measured_poll() {
        let s = WorkerStats::default();
        let lap = Lap::start(0).record(&s, 0, 32);
        lap.record(&s, 1, 32);
        assert_eq!(s.nodes[0].clocks.load(Relaxed), 0);
        assert_eq!(s.nodes[1].packets.load(Relaxed), 32);
        let lap = Lap::start(16);
        std::hint::black_box((0..1000u64).sum::<u64>());
        lap.record(&s, 0, 32).record(&s, 1, 32);
        let c = s.nodes[0].clocks.load(Relaxed);
        assert!(c > 0 && c % 16 == 0, "{c}");
        assert_eq!(s.nodes[0].calls.load(Relaxed), 2);
    }
}
