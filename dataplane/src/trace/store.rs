//! The control thread's store of hop records: drained from every worker's queue, kept per
//! trace id (bounded: the oldest trace goes first), with timestamps turned into wall-clock
//! time so records of several hosts can be put side by side.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::HopRecord;
use super::tracer::TraceChannel;
use crate::worker::Clock;

/// Traces kept.
pub const MAX_TRACES: usize = 1024;
/// Hops kept per trace (a probe crosses a dozen nodes per host).
pub const MAX_HOPS: usize = 256;

/// A hop as stored: the worker's record and its wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHop {
    /// The record.
    pub record: HopRecord,
    /// Nanoseconds since the Unix epoch.
    pub unix_ns: u64,
}

/// Counters of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Records drained from the workers.
    pub records: u64,
    /// Records the workers lost to full queues.
    pub lost: u64,
    /// Packets left untraced because every slot of their worker was in use.
    pub slots_full: u64,
    /// Traces evicted to make room.
    pub evicted: u64,
}

/// Hop records by trace id.
#[derive(Debug)]
pub struct TraceStore {
    channels: Vec<Arc<TraceChannel>>,
    clock: Clock,
    traces: HashMap<u64, Vec<StoredHop>>,
    order: VecDeque<u64>,
    records: u64,
    evicted: u64,
}

impl TraceStore {
    /// A store draining `channels` (one per worker) whose records are on `clock`.
    pub fn new(channels: Vec<Arc<TraceChannel>>, clock: Clock) -> TraceStore {
        TraceStore {
            channels,
            clock,
            traces: HashMap::new(),
            order: VecDeque::new(),
            records: 0,
            evicted: 0,
        }
    }

    /// Moves every queued record into the store; returns how many.
    pub fn drain(&mut self) -> usize {
        let now_ns = self.clock.now_ns();
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut n = 0;
        for i in 0..self.channels.len() {
            while let Some(record) = self.channels[i].records.pop() {
                let age = now_ns.saturating_sub(record.ts_ns);
                self.insert(StoredHop {
                    record,
                    unix_ns: now_unix.saturating_sub(age),
                });
                n += 1;
            }
        }
        self.records += n as u64;
        n
    }

    fn insert(&mut self, hop: StoredHop) {
        let id = hop.record.trace;
        if !self.traces.contains_key(&id) {
            while self.traces.len() >= MAX_TRACES {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if self.traces.remove(&old).is_some() {
                    self.evicted += 1;
                }
            }
            self.order.push_back(id);
        }
        let hops = self.traces.entry(id).or_default();
        if hops.len() < MAX_HOPS {
            hops.push(hop);
        }
    }

    /// The hops of trace `id` in the order they happened (by worker clock, then sequence).
    pub fn hops(&mut self, id: u64) -> Vec<StoredHop> {
        self.drain();
        let mut hops = self.traces.get(&id).cloned().unwrap_or_default();
        hops.sort_by_key(|h| (h.record.ts_ns, h.record.worker, h.record.seq));
        hops
    }

    /// The store's counters.
    pub fn stats(&self) -> TraceStats {
        TraceStats {
            records: self.records,
            lost: self.channels.iter().map(|c| c.lost.load(Relaxed)).sum(),
            slots_full: self
                .channels
                .iter()
                .map(|c| c.slots_full.load(Relaxed))
                .sum(),
            evicted: self.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Meta, NodeId};
    use crate::trace::{Action, Tracer};

    #[test]
    fn records_are_kept_by_trace_and_the_oldest_trace_goes_first() {
        let ch = TraceChannel::new();
        let mut t = Tracer::new(0, ch.clone());
        let mut store = TraceStore::new(vec![ch.clone()], Clock::monotonic());
        for id in 0..(MAX_TRACES as u64 + 2) {
            let mut m = Meta::rx(0);
            t.begin(&mut m, id, 0);
            t.record(&m, NodeId::EthInput, Action::Consumed, 1, id);
            t.end(&mut m);
            store.drain();
        }
        assert!(store.hops(0).is_empty());
        assert!(store.hops(1).is_empty());
        let h = store.hops(MAX_TRACES as u64 + 1);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].record.action, Action::Consumed);
        assert_eq!(store.stats().evicted, 2);
        assert_eq!(store.stats().records, MAX_TRACES as u64 + 2);
    }
}
