//! One worker's capture ring for one capture: a fixed set of preallocated [`Record`]s that
//! travel between two lock-free queues. The worker takes a free record, fills it and puts
//! it on the full queue ([`CaptureRing::record`]); the control thread takes full records,
//! copies them out and gives them back ([`CaptureRing::drain`]). Nothing is allocated after
//! [`CaptureRing::new`], nothing blocks: when no free record is left the packet is not
//! captured and [`CaptureRing::overflow`] counts it, so memory stays bounded and forwarding
//! never waits for a slow reader.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

use crate::graph::{DropReason, NodeId};

/// Bytes a record holds: the largest snap length.
pub const RECORD_BYTES: usize = 2048;

/// Where a packet was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// Received on a port, before `ethernet-input`.
    Rx,
    /// About to be transmitted on a port (the tx burst).
    Tx,
    /// Dropped, with its reason.
    Drop(DropReason),
    /// In the input frame of a graph node, before the node runs.
    Node(NodeId),
}

/// One captured packet: its first bytes and where and when it was seen.
#[derive(Clone)]
pub struct Record {
    /// Worker clock, nanoseconds.
    pub ts_ns: u64,
    /// Port index: the port of an rx or tx point; for a node point the port the packet came
    /// in on (for a packet the dataplane built, the port of the one it answers); for drops
    /// `u16::MAX` (not recorded).
    pub port: u16,
    /// Capture point.
    pub point: Point,
    /// Length of the whole packet.
    pub wire_len: u32,
    /// Bytes copied into `data`.
    pub len: u16,
    /// The first `len` bytes of the packet.
    pub data: [u8; RECORD_BYTES],
}

/// A worker's ring of records for one capture.
pub struct CaptureRing {
    free: ArrayQueue<Box<Record>>,
    full: ArrayQueue<Box<Record>>,
    captured: AtomicU64,
    overflow: AtomicU64,
}

impl Record {
    fn empty() -> Box<Record> {
        Box::new(Record {
            ts_ns: 0,
            port: 0,
            point: Point::Rx,
            wire_len: 0,
            len: 0,
            data: [0; RECORD_BYTES],
        })
    }

    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len).min(RECORD_BYTES)]
    }
}

impl CaptureRing {
    /// A ring of `records` preallocated records (at least 1).
    pub fn new(records: usize) -> CaptureRing {
        let records = records.max(1);
        let free = ArrayQueue::new(records);
        for _ in 0..records {
            // Cannot fail: the queue has room for every record.
            let _ = free.push(Record::empty());
        }
        CaptureRing {
            free,
            full: ArrayQueue::new(records),
            captured: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
        }
    }

    /// The worker's side: copies up to `snaplen` bytes of `data` (a packet of `wire_len`
    /// bytes) into a free record; false, counted as overflow, when none is free.
    #[inline]
    pub fn record(
        &self,
        ts_ns: u64,
        port: u16,
        point: Point,
        data: &[u8],
        wire_len: u32,
        snaplen: usize,
    ) -> bool {
        let Some(mut r) = self.free.pop() else {
            self.overflow.fetch_add(1, Relaxed);
            return false;
        };
        let n = data.len().min(snaplen).min(RECORD_BYTES);
        r.data[..n].copy_from_slice(&data[..n]);
        r.len = n as u16;
        r.ts_ns = ts_ns;
        r.port = port;
        r.point = point;
        r.wire_len = wire_len;
        // Cannot fail: there are as many records as room on the full queue. Were it to
        // fail, the record would be freed here: counted, never blocking.
        if self.full.push(r).is_err() {
            self.overflow.fetch_add(1, Relaxed);
            return false;
        }
        self.captured.fetch_add(1, Relaxed);
        true
    }

    /// The control side: hands every full record to `f`, then returns it to the free list;
    /// at most `max` records. Returns how many.
    pub fn drain(&self, max: usize, mut f: impl FnMut(&Record)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(r) = self.full.pop() else { break };
            f(&r);
            // Cannot fail: a record taken from `full` has its place on `free`.
            let _ = self.free.push(r);
            n += 1;
        }
        n
    }

    /// Packets captured into this ring so far.
    pub fn captured(&self) -> u64 {
        self.captured.load(Relaxed)
    }

    /// Packets that matched but found no free record.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Relaxed)
    }

    /// Records this ring holds.
    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_overflow_counted_and_records_reused() {
        let ring = CaptureRing::new(4);
        let pkt: Vec<u8> = (0..100u8).collect();
        for i in 0..6 {
            let ok = ring.record(i, 1, Point::Rx, &pkt, 100, 64);
            assert_eq!(ok, i < 4, "packet {i}");
        }
        assert_eq!((ring.captured(), ring.overflow()), (4, 2));
        let mut seen = Vec::new();
        assert_eq!(
            ring.drain(3, |r| seen.push((r.ts_ns, r.bytes().len(), r.wire_len))),
            3
        );
        assert_eq!(seen, vec![(0, 64, 100), (1, 64, 100), (2, 64, 100)]);
        // Three records are free again: three more fit, the fourth overflows.
        for i in 10..14 {
            ring.record(i, 0, Point::Drop(DropReason::NoRoute), &pkt[..10], 10, 64);
        }
        assert_eq!((ring.captured(), ring.overflow()), (7, 3));
        let mut points = Vec::new();
        assert_eq!(
            ring.drain(usize::MAX, |r| points.push((r.ts_ns, r.point))),
            4
        );
        assert_eq!(points[0], (3, Point::Rx));
        assert_eq!(points[3], (12, Point::Drop(DropReason::NoRoute)));
        assert_eq!(ring.capacity(), 4);
    }

    #[test]
    fn snaplen_and_record_size_bound_the_copy() {
        let ring = CaptureRing::new(2);
        let big = vec![7u8; RECORD_BYTES + 500];
        ring.record(0, 0, Point::Tx, &big, big.len() as u32, usize::MAX);
        ring.record(0, 0, Point::Tx, &big, big.len() as u32, 0);
        let mut lens = Vec::new();
        ring.drain(9, |r| lens.push((r.bytes().len(), r.wire_len as usize)));
        assert_eq!(
            lens,
            vec![(RECORD_BYTES, RECORD_BYTES + 500), (0, RECORD_BYTES + 500)]
        );
    }
}
