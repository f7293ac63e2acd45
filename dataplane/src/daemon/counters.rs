//! "clear counters" without racing the workers: the workers' counters only ever grow (each
//! has a single writer); clearing records their current values as a baseline that every
//! report subtracts.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use crate::ctl::PortCounters;
use crate::graph::{DropReason, WorkerStats, RUNTIME_SLOTS};
use crate::port::PortStats;

/// One worker's counters at the last clear.
#[derive(Debug, Clone)]
pub struct WorkerBaseline {
    /// Poll rounds.
    pub polls: u64,
    /// Idle poll rounds.
    pub idle_polls: u64,
    /// Sleeps.
    pub sleeps: u64,
    /// Packets consumed.
    pub consumed: u64,
    /// ICMP errors sent.
    pub icmp_sent: u64,
    /// ICMP errors suppressed.
    pub icmp_rate_limited: u64,
    /// Per runtime slot: calls, packets, clocks.
    pub nodes: [[u64; 3]; RUNTIME_SLOTS.len()],
    /// Per drop reason.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for WorkerBaseline {
    fn default() -> Self {
        WorkerBaseline {
            polls: 0,
            idle_polls: 0,
            sleeps: 0,
            consumed: 0,
            icmp_sent: 0,
            icmp_rate_limited: 0,
            nodes: [[0; 3]; RUNTIME_SLOTS.len()],
            drops: [0; DropReason::COUNT],
        }
    }
}

/// Baselines for every worker and port.
#[derive(Debug, Default)]
pub struct Baseline {
    workers: HashMap<usize, WorkerBaseline>,
    /// Per worker, its security-group denial counters by slot (kept apart from
    /// [`WorkerBaseline`], which is copied out per report).
    sg_denies: HashMap<usize, Box<[u64]>>,
    ports: HashMap<usize, PortCounters>,
}

impl Baseline {
    /// The baseline of worker `id` (zeros before the first clear).
    pub fn worker(&self, id: usize) -> WorkerBaseline {
        self.workers.get(&id).cloned().unwrap_or_default()
    }

    /// Records worker `id`'s current counters.
    pub fn capture_worker(&mut self, id: usize, s: &WorkerStats) {
        let mut b = WorkerBaseline {
            polls: s.polls.load(Relaxed),
            idle_polls: s.idle_polls.load(Relaxed),
            sleeps: s.sleeps.load(Relaxed),
            consumed: s.consumed.load(Relaxed),
            icmp_sent: s.icmp_sent.load(Relaxed),
            icmp_rate_limited: s.icmp_rate_limited.load(Relaxed),
            ..WorkerBaseline::default()
        };
        for (i, n) in s.nodes.iter().enumerate() {
            b.nodes[i] = [
                n.calls.load(Relaxed),
                n.packets.load(Relaxed),
                n.clocks.load(Relaxed),
            ];
        }
        for r in DropReason::ALL {
            b.drops[*r as usize] = s.drops_for(*r);
        }
        self.workers.insert(id, b);
        let sg = s.sg_denies.iter().map(|c| c.load(Relaxed)).collect();
        self.sg_denies.insert(id, sg);
    }

    /// Worker `id`'s denials in counter slot `slot` since the last clear, `now` being the
    /// counter's current value.
    pub fn sg_denied(&self, id: usize, slot: usize, now: u64) -> u64 {
        let base = self
            .sg_denies
            .get(&id)
            .and_then(|b| b.get(slot))
            .copied()
            .unwrap_or(0);
        now.saturating_sub(base)
    }

    /// Records port `index`'s current counters.
    pub fn capture_port(&mut self, index: usize, now: PortCounters) {
        self.ports.insert(index, now);
    }

    /// Port `index`'s counters since the last clear.
    pub fn port(&self, index: usize, now: PortCounters) -> PortCounters {
        let b = self.ports.get(&index).copied().unwrap_or_default();
        PortCounters {
            rx_packets: now.rx_packets.saturating_sub(b.rx_packets),
            rx_bytes: now.rx_bytes.saturating_sub(b.rx_bytes),
            tx_packets: now.tx_packets.saturating_sub(b.tx_packets),
            tx_bytes: now.tx_bytes.saturating_sub(b.tx_bytes),
            rx_missed: now.rx_missed.saturating_sub(b.rx_missed),
            rx_errors: now.rx_errors.saturating_sub(b.rx_errors),
            tx_errors: now.tx_errors.saturating_sub(b.tx_errors),
            rx_nombuf: now.rx_nombuf.saturating_sub(b.rx_nombuf),
        }
    }
}

/// DPDK port statistics as the admin API's counters.
pub fn port_counters(s: &PortStats) -> PortCounters {
    PortCounters {
        rx_packets: s.ipackets,
        rx_bytes: s.ibytes,
        tx_packets: s.opackets,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::stats::bump;

    #[test]
    fn clearing_subtracts_without_touching_worker_counters() {
        let s = WorkerStats::default();
        bump(&s.polls, 10);
        s.count_drop(DropReason::NoRoute);
        let mut b = Baseline::default();
        b.capture_worker(0, &s);
        bump(&s.polls, 5);
        s.count_drop(DropReason::NoRoute);
        let w = b.worker(0);
        assert_eq!(s.polls.load(Relaxed) - w.polls, 5);
        assert_eq!(
            s.drops_for(DropReason::NoRoute) - w.drops[DropReason::NoRoute as usize],
            1
        );
        let now = PortCounters {
            rx_packets: 7,
            ..Default::default()
        };
        b.capture_port(0, now);
        let later = PortCounters {
            rx_packets: 9,
            ..Default::default()
        };
        assert_eq!(b.port(0, later).rx_packets, 2);
        assert_eq!(b.port(1, later).rx_packets, 9);
        bump(&s.sg_denies[3], 4);
        assert_eq!(b.sg_denied(0, 3, s.sg_denies[3].load(Relaxed)), 4);
        b.capture_worker(0, &s);
        assert_eq!(b.sg_denied(0, 3, s.sg_denies[3].load(Relaxed)), 0);
        assert_eq!(b.sg_denied(1, 3, 6), 6);
    }
}
