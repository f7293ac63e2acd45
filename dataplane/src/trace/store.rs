//! The control thread's store of hop records: drained from every worker's queue, kept per
//! trace id (bounded: the oldest trace goes first), with timestamps turned into wall-clock
//! time so records of several hosts can be put side by side. Records of watched packets
//! ([`super::watch`]) go to their watch's ring instead, from which the watch's stream takes
//! whole paths ([`TraceStore::take_watched`]); they never push a probe's trace out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::{Action, HopRecord};
use super::tracer::TraceChannel;
use super::watch::watch_of;
use crate::worker::Clock;

/// Traces kept.
pub const MAX_TRACES: usize = 1024;
/// Hops kept per trace (a probe crosses a dozen nodes per host).
pub const MAX_HOPS: usize = 256;

/// Paths kept per watch before the stream takes them (a ring: when it is full the oldest
/// path goes, counted as overwritten).
pub const WATCH_RING: usize = 4096;
/// A watched path is complete this long after its last hop if that hop ended it.
pub const WATCH_SETTLE_NS: u64 = 10_000_000;
/// A watched path that has not ended after this long is given out as it is.
pub const WATCH_PATH_TIMEOUT_NS: u64 = 1_000_000_000;

/// The unread paths of one watch.
#[derive(Debug, Default)]
struct WatchRing {
    traces: HashMap<u64, Vec<StoredHop>>,
    order: VecDeque<u64>,
    overwritten: u64,
}

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
    watches: HashMap<u8, WatchRing>,
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
            watches: HashMap::new(),
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
        if let Some(w) = watch_of(id) {
            // A watch that ended (or never started here) keeps nothing.
            if let Some(ring) = self.watches.get_mut(&w) {
                ring.insert(hop);
            }
            return;
        }
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

    /// Starts keeping the paths of watch `watch` (its session started).
    pub fn open_watch(&mut self, watch: u8) {
        self.watches.insert(watch, WatchRing::default());
    }

    /// Forgets watch `watch` and its unread paths (its session ended).
    pub fn close_watch(&mut self, watch: u8) {
        self.watches.remove(&watch);
    }

    /// Paths of watch `watch` the ring overwrote before they were taken.
    pub fn watch_overwritten(&self, watch: u8) -> u64 {
        self.watches.get(&watch).map_or(0, |r| r.overwritten)
    }

    /// Takes up to `max` complete paths of watch `watch`, oldest first, each as its trace
    /// id and hops in order. A path is complete [`WATCH_SETTLE_NS`] after a hop that ends a
    /// packet (transmitted, delivered, dropped, consumed, handed off), or
    /// [`WATCH_PATH_TIMEOUT_NS`] after its first hop whatever it did (held packets).
    pub fn take_watched(&mut self, watch: u8, max: usize) -> Vec<(u64, Vec<StoredHop>)> {
        self.drain();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let Some(ring) = self.watches.get_mut(&watch) else {
            return Vec::new();
        };
        ring.take(now, max)
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

impl WatchRing {
    fn insert(&mut self, hop: StoredHop) {
        let id = hop.record.trace;
        if !self.traces.contains_key(&id) {
            while self.traces.len() >= WATCH_RING {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if self.traces.remove(&old).is_some() {
                    self.overwritten += 1;
                }
            }
            self.order.push_back(id);
        }
        let hops = self.traces.entry(id).or_default();
        if hops.len() < MAX_HOPS {
            hops.push(hop);
        }
    }

    fn take(&mut self, now_unix: u64, max: usize) -> Vec<(u64, Vec<StoredHop>)> {
        let mut out = Vec::new();
        let traces = &mut self.traces;
        self.order.retain(|id| {
            if out.len() >= max {
                return true;
            }
            let Some(hops) = traces.get_mut(id) else {
                return false;
            };
            hops.sort_by_key(|h| (h.record.ts_ns, h.record.worker, h.record.seq));
            let (Some(first), Some(last)) = (hops.first(), hops.last()) else {
                return false;
            };
            let ended = matches!(
                last.record.action,
                Action::Transmitted { .. }
                    | Action::Delivered { .. }
                    | Action::Dropped(_)
                    | Action::Consumed
                    | Action::HandedOff { .. }
            );
            let settled = ended && now_unix.saturating_sub(last.unix_ns) >= WATCH_SETTLE_NS;
            let timed_out = now_unix.saturating_sub(first.unix_ns) >= WATCH_PATH_TIMEOUT_NS;
            if !(settled || timed_out) {
                return true;
            }
            if let Some(hops) = traces.remove(id) {
                out.push((*id, hops));
            }
            false
        });
        out
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

    fn hop(trace: u64, seq: u16, action: Action, unix_ns: u64) -> StoredHop {
        StoredHop {
            record: HopRecord {
                trace,
                ts_ns: unix_ns,
                revision: 1,
                seq,
                worker: 0,
                node: NodeId::EthInput,
                action,
                detail: Default::default(),
            },
            unix_ns,
        }
    }

    #[test]
    fn watched_paths_go_to_their_ring_complete_and_in_order() {
        use crate::trace::watch::watch_trace_id;
        let mut ring = WatchRing::default();
        let (a, b, c) = (
            watch_trace_id(1, 0, 0),
            watch_trace_id(1, 0, 1),
            watch_trace_id(1, 0, 2),
        );
        let ms = 1_000_000;
        ring.insert(hop(a, 1, Action::Transmitted { port: 2 }, 2 * ms));
        ring.insert(hop(a, 0, Action::Watched { port: 1 }, ms));
        ring.insert(hop(b, 0, Action::Watched { port: 1 }, 3 * ms));
        ring.insert(hop(b, 1, Action::Next(NodeId::VmInput), 4 * ms));
        ring.insert(hop(c, 0, Action::Watched { port: 1 }, 5 * ms));
        ring.insert(hop(
            c,
            1,
            Action::Dropped(crate::graph::DropReason::NoRoute),
            5 * ms,
        ));
        // Nothing has settled 5 ms in.
        assert!(ring.take(5 * ms, 10).is_empty());
        // At 20 ms a and c ended and settled; b is still on its way.
        let got = ring.take(20 * ms, 10);
        let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![a, c]);
        assert_eq!(got[0].1[0].record.action, Action::Watched { port: 1 });
        // b times out a second after its first hop and is given out as it is.
        assert!(ring.take(500 * ms, 10).is_empty());
        let late = ring.take(3 * ms + WATCH_PATH_TIMEOUT_NS, 10);
        assert_eq!((late.len(), late[0].1.len()), (1, 2));
        // A full ring overwrites the oldest path and counts it.
        for i in 0..WATCH_RING as u64 + 3 {
            ring.insert(hop(watch_trace_id(1, 0, 10 + i), 0, Action::Consumed, 0));
        }
        assert_eq!(ring.overwritten, 3);
        assert_eq!(ring.take(WATCH_SETTLE_NS, 2).len(), 2);
        assert_eq!(ring.traces.len(), WATCH_RING - 2);
    }

    #[test]
    fn records_of_a_closed_watch_are_not_kept() {
        use crate::trace::watch::watch_trace_id;
        let ch = TraceChannel::new();
        let mut t = Tracer::new(0, ch.clone());
        let mut store = TraceStore::new(vec![ch.clone()], Clock::monotonic());
        store.open_watch(2);
        for (watch, n) in [(2u8, 0u64), (3, 0)] {
            let mut m = Meta::rx(0);
            t.begin(&mut m, watch_trace_id(watch, 0, n), 0);
            t.record(&m, NodeId::EthInput, Action::Consumed, 1, 0);
            t.end(&mut m);
        }
        store.drain();
        assert_eq!(store.watches[&2].traces.len(), 1);
        assert!(!store.watches.contains_key(&3));
        // Probe traces are untouched by watches.
        assert!(store.traces.is_empty());
        store.close_watch(2);
        assert!(store.take_watched(2, 10).is_empty());
    }
}
