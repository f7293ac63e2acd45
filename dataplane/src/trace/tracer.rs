//! The per-worker tracer: a small table of trace slots (one per traced packet in flight on
//! this worker) and the bounded queue of hop records to the control thread. Nothing here
//! allocates or blocks: a full slot table leaves a packet untraced, a full queue loses the
//! record; both are counted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::record::{Action, Detail, HopRecord};
use super::summary::PacketSummary;
use super::watch::{Watches, WATCH_SLOTS};
use crate::graph::frame::TRACE_SLOT_MASK;
use crate::graph::{Meta, NodeId};

/// Traced packets in flight per worker (slot 0 means "not traced").
pub const SLOTS: usize = TRACE_SLOT_MASK as usize;
/// Hop records a worker can queue before the control thread drains them.
pub const RECORD_QUEUE: usize = 4096;
/// A slot whose packet never reached an end (a bug, or a packet freed elsewhere) is taken
/// back after this long.
pub const SLOT_TIMEOUT_NS: u64 = 10_000_000_000;

/// The queue from one worker to the control thread, with its loss counters.
#[derive(Debug)]
pub struct TraceChannel {
    /// Hop records, oldest first.
    pub records: ArrayQueue<HopRecord>,
    /// Records lost to a full queue.
    pub lost: AtomicU64,
    /// Packets that could not be traced: every slot was in use.
    pub slots_full: AtomicU64,
}

impl TraceChannel {
    /// An empty channel.
    pub fn new() -> Arc<TraceChannel> {
        Arc::new(TraceChannel {
            records: ArrayQueue::new(RECORD_QUEUE),
            lost: AtomicU64::new(0),
            slots_full: AtomicU64::new(0),
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    id: u64,
    since_ns: u64,
    seq: u16,
    used: bool,
    detail: Detail,
}

/// One worker's tracer.
#[derive(Debug)]
pub struct Tracer {
    slots: [Slot; SLOTS + 1],
    in_use: usize,
    worker: u16,
    channel: Arc<TraceChannel>,
    watches: Watches,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new(0, TraceChannel::new())
    }
}

impl Tracer {
    /// Worker `worker`'s tracer, writing to `channel`.
    pub fn new(worker: u16, channel: Arc<TraceChannel>) -> Tracer {
        Tracer {
            slots: [Slot::default(); SLOTS + 1],
            in_use: 0,
            worker,
            channel,
            watches: Watches::default(),
        }
    }

    /// The channel the records go to.
    pub fn channel(&self) -> &Arc<TraceChannel> {
        &self.channel
    }

    /// Packets being traced now.
    pub fn in_flight(&self) -> usize {
        self.in_use
    }

    /// Starts tracing the packet of `meta` under trace `id`; false (counted) if every slot
    /// is in use.
    pub fn begin(&mut self, meta: &mut Meta, id: u64, now_ns: u64) -> bool {
        if meta.traced() {
            self.end(meta);
        }
        let Some(i) = (1..=SLOTS).find(|&i| !self.slots[i].used) else {
            self.channel.slots_full.fetch_add(1, Relaxed);
            return false;
        };
        self.slots[i] = Slot {
            id,
            since_ns: now_ns,
            seq: 0,
            used: true,
            detail: Detail::None,
        };
        self.in_use += 1;
        meta.set_trace_slot(i as u8);
        true
    }

    /// The trace watches this worker runs.
    pub fn watches(&self) -> &Watches {
        &self.watches
    }

    /// The trace watches, to start or stop one.
    pub fn watches_mut(&mut self) -> &mut Watches {
        &mut self.watches
    }

    /// Offers an untraced packet (`frame` from its Ethernet header, received on `port`, or
    /// `None` for the inner frame of a Geneve packet) to the running watches; if one takes
    /// it, starts tracing it and records `action` at `node` with the packet's headers as
    /// the detail. Watched packets use at most [`WATCH_SLOTS`] slots (probes keep the rest).
    #[inline(never)]
    pub fn watch(
        &mut self,
        meta: &mut Meta,
        frame: &[u8],
        port: Option<u16>,
        (node, action): (NodeId, Action),
        revision: u64,
        now_ns: u64,
    ) -> bool {
        let free = self.in_use < WATCH_SLOTS;
        let Some(id) = self.watches.select(port, frame, self.worker, free, now_ns) else {
            return false;
        };
        if !self.begin(meta, id, now_ns) {
            return false;
        }
        self.note(meta, Detail::Packet(PacketSummary::parse(frame)));
        self.record(meta, node, action, revision, now_ns);
        true
    }

    /// The trace id of a traced packet.
    #[inline]
    pub fn id(&self, meta: &Meta) -> Option<u64> {
        let s = &self.slots[usize::from(meta.trace_slot())];
        s.used.then_some(s.id)
    }

    /// True if the packet is a traced probe.
    #[inline]
    pub fn is_probe(&self, meta: &Meta) -> bool {
        self.id(meta).is_some_and(super::is_probe)
    }

    /// Notes why the current node decided as it did; the next record carries it.
    #[cold]
    #[inline(never)]
    pub fn note(&mut self, meta: &Meta, detail: Detail) {
        let s = &mut self.slots[usize::from(meta.trace_slot())];
        if s.used {
            s.detail = detail;
        }
    }

    /// Records that the traced packet of `meta` left `node` with `action`.
    pub fn record(&mut self, meta: &Meta, node: NodeId, action: Action, revision: u64, now: u64) {
        let worker = self.worker;
        let s = &mut self.slots[usize::from(meta.trace_slot())];
        if !s.used {
            return;
        }
        let rec = HopRecord {
            trace: s.id,
            ts_ns: now,
            revision,
            seq: s.seq,
            worker,
            node,
            action,
            detail: std::mem::take(&mut s.detail),
        };
        s.seq = s.seq.wrapping_add(1);
        if self.channel.records.push(rec).is_err() {
            self.channel.lost.fetch_add(1, Relaxed);
        }
    }

    /// Stops tracing the packet of `meta` (it left this worker or died).
    #[cold]
    #[inline(never)]
    pub fn end(&mut self, meta: &mut Meta) {
        let i = usize::from(meta.trace_slot());
        if i != 0 && self.slots[i].used {
            self.slots[i].used = false;
            self.in_use -= 1;
        }
        meta.set_trace_slot(0);
    }

    /// Takes back slots older than [`SLOT_TIMEOUT_NS`] (their packets ended somewhere that
    /// did not say so). Cheap when nothing is traced.
    pub fn reap(&mut self, now_ns: u64) {
        if self.in_use == 0 {
            return;
        }
        for s in self.slots.iter_mut().skip(1) {
            if s.used && now_ns.saturating_sub(s.since_ns) > SLOT_TIMEOUT_NS {
                s.used = false;
                self.in_use -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_recorded_and_given_back() {
        let ch = TraceChannel::new();
        let mut t = Tracer::new(3, ch.clone());
        let mut m = Meta::rx(1);
        m.set_local_origin();
        assert!(t.begin(&mut m, 42 | super::super::PROBE_BIT, 10));
        assert!(m.traced() && m.local_origin());
        assert!(t.is_probe(&m));
        t.note(
            &m,
            Detail::Encap {
                remote: 1,
                vni: 100,
            },
        );
        t.record(&m, NodeId::VmInput, Action::Next(NodeId::VpcRoute), 7, 11);
        t.record(&m, NodeId::VpcRoute, Action::Consumed, 7, 12);
        let a = ch.records.pop().unwrap();
        let b = ch.records.pop().unwrap();
        assert_eq!((a.seq, a.worker, a.revision), (0, 3, 7));
        assert_eq!(
            a.detail,
            Detail::Encap {
                remote: 1,
                vni: 100
            }
        );
        assert_eq!((b.seq, b.detail), (1, Detail::None));
        t.end(&mut m);
        assert!(!m.traced() && m.local_origin());
        assert_eq!(t.in_flight(), 0);
        // An untraced packet records nothing.
        t.record(&m, NodeId::VpcRoute, Action::Consumed, 7, 12);
        assert!(ch.records.is_empty());
    }

    #[test]
    fn a_full_table_leaves_packets_untraced_and_counts_them() {
        let ch = TraceChannel::new();
        let mut t = Tracer::new(0, ch.clone());
        let mut metas: Vec<Meta> = (0..SLOTS).map(|_| Meta::rx(0)).collect();
        for m in &mut metas {
            assert!(t.begin(m, 1, 0));
        }
        let mut extra = Meta::rx(0);
        assert!(!t.begin(&mut extra, 2, 0));
        assert!(!extra.traced());
        assert_eq!(ch.slots_full.load(Relaxed), 1);
        t.reap(SLOT_TIMEOUT_NS + 1);
        assert_eq!(t.in_flight(), 0);
        assert!(t.begin(&mut extra, 2, 0));
    }

    #[test]
    fn a_full_queue_loses_records_and_counts_them() {
        let ch = TraceChannel::new();
        let mut t = Tracer::new(0, ch.clone());
        let mut m = Meta::rx(0);
        t.begin(&mut m, 9, 0);
        for _ in 0..RECORD_QUEUE + 5 {
            t.record(&m, NodeId::EthInput, Action::Consumed, 0, 0);
        }
        assert_eq!(ch.lost.load(Relaxed), 5);
    }
}
