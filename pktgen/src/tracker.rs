//! The receive-side bookkeeping: per stream, which sequence numbers arrived (a sliding bitmap
//! of the last [`WINDOW`] numbers finds duplicates), how many arrived out of order, and over
//! all streams the latency histogram and the longest silence between two received packets
//! (the outage a failover or restart caused), with the sequence numbers it swallowed.
//!
//! Deterministic: callers pass the TSC values, so tests need no clock.

use crate::histogram::Histogram;

/// Sequence numbers remembered per stream for duplicate detection.
pub const WINDOW: u64 = 1 << 16;
const WORDS: usize = (WINDOW / 64) as usize;

/// One stream's state.
#[derive(Debug, Clone)]
struct Stream {
    highest: Option<u64>,
    bits: Box<[u64; WORDS]>,
    unique: u64,
    duplicates: u64,
    reordered: u64,
    /// Older than the window: counted as received and reordered, not checked for duplicates.
    too_old: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            highest: None,
            bits: Box::new([0; WORDS]),
            unique: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
        }
    }
}

impl Stream {
    fn test_and_set(&mut self, seq: u64) -> bool {
        let i = (seq % WINDOW) as usize;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let was = self.bits[w] & b != 0;
        self.bits[w] |= b;
        was
    }

    fn clear(&mut self, seq: u64) {
        let i = (seq % WINDOW) as usize;
        self.bits[i / 64] &= !(1u64 << (i % 64));
    }

    /// Records `seq`; returns whether it was new.
    fn record(&mut self, seq: u64) -> bool {
        match self.highest {
            None => {
                self.highest = Some(seq);
                self.test_and_set(seq);
                self.unique += 1;
                true
            }
            Some(h) if seq > h => {
                if seq - h >= WINDOW {
                    self.bits.fill(0);
                } else {
                    for s in h + 1..seq {
                        self.clear(s);
                    }
                }
                self.test_and_set(seq);
                self.highest = Some(seq);
                self.unique += 1;
                true
            }
            Some(h) if h - seq >= WINDOW => {
                self.too_old += 1;
                self.reordered += 1;
                self.unique += 1;
                true
            }
            Some(_) => {
                if self.test_and_set(seq) {
                    self.duplicates += 1;
                    false
                } else {
                    self.reordered += 1;
                    self.unique += 1;
                    true
                }
            }
        }
    }
}

/// The longest silence seen between two received packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gap {
    /// Length in TSC cycles.
    pub cycles: u64,
    /// TSC of the last packet before it.
    pub start_tsc: u64,
    /// Stream of the packet that ended it.
    pub stream: u16,
    /// Highest sequence number of that stream before the gap (`None`: none yet).
    pub seq_before: Option<u64>,
    /// Sequence number of the packet that ended it.
    pub seq_after: u64,
}

impl Gap {
    /// Sequence numbers of the ending stream missing across the gap (0 when the packet after
    /// the gap follows the one before it: the packets were delayed, not lost).
    pub fn missing(&self) -> u64 {
        match self.seq_before {
            Some(b) if self.seq_after > b => self.seq_after - b - 1,
            _ => 0,
        }
    }
}

/// Receive-side totals and state.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    streams: Vec<Stream>,
    /// Latency of every new packet, in ns.
    pub latency_ns: Histogram,
    /// Packets with a stamp, duplicates included.
    pub received: u64,
    /// Bytes of those packets (FCS excluded).
    pub bytes: u64,
    /// Packets without a stamp.
    pub foreign: u64,
    unique: u64,
    first_rx: Option<u64>,
    last_rx: Option<u64>,
    longest: Gap,
    tsc_hz: u64,
}

/// Snapshot of the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Repeated ones.
    pub duplicates: u64,
    /// Arrived after a higher one of the same stream.
    pub reordered: u64,
    /// Arrived more than [`WINDOW`] behind (not checked for duplicates).
    pub too_old: u64,
}

impl Tracker {
    /// A tracker converting TSC cycles at `tsc_hz` for latencies.
    pub fn new(tsc_hz: u64) -> Tracker {
        Tracker {
            tsc_hz,
            ..Tracker::default()
        }
    }

    /// Records a stamped packet of `len` bytes from `stream` with sequence `seq`, sent at TSC
    /// `tx_tsc` and received at `rx_tsc`.
    #[inline]
    pub fn record(&mut self, stream: u16, seq: u64, tx_tsc: u64, rx_tsc: u64, len: usize) {
        let s = usize::from(stream);
        if s >= self.streams.len() {
            self.streams.resize_with(s + 1, Stream::default);
        }
        self.received += 1;
        self.bytes += len as u64;
        if let Some(last) = self.last_rx {
            let gap = rx_tsc.saturating_sub(last);
            if gap > self.longest.cycles {
                self.longest = Gap {
                    cycles: gap,
                    start_tsc: last,
                    stream,
                    seq_before: self.streams[s].highest,
                    seq_after: seq,
                };
            }
        }
        self.first_rx.get_or_insert(rx_tsc);
        self.last_rx = Some(self.last_rx.map_or(rx_tsc, |l| l.max(rx_tsc)));
        if self.streams[s].record(seq) {
            self.unique += 1;
            let cycles = rx_tsc.saturating_sub(tx_tsc);
            self.latency_ns
                .record(aegis_dataplane::port::clock::cycles_to_ns(
                    cycles,
                    self.tsc_hz,
                ));
        }
    }

    /// Records a packet that carries no stamp.
    pub fn record_foreign(&mut self) {
        self.foreign += 1;
    }

    /// Totals over all streams.
    pub fn totals(&self) -> Totals {
        self.streams.iter().fold(Totals::default(), |t, s| Totals {
            unique: t.unique + s.unique,
            duplicates: t.duplicates + s.duplicates,
            reordered: t.reordered + s.reordered,
            too_old: t.too_old + s.too_old,
        })
    }

    /// Distinct packets received over all streams.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Distinct packets received from `stream`.
    pub fn unique_of(&self, stream: u16) -> u64 {
        self.streams
            .get(usize::from(stream))
            .map_or(0, |s| s.unique)
    }

    /// The longest gap so far (`None` before two packets arrived).
    pub fn longest_gap(&self) -> Option<Gap> {
        (self.received >= 2).then_some(self.longest)
    }

    /// TSC of the first and last received packets.
    pub fn rx_window(&self) -> Option<(u64, u64)> {
        Some((self.first_rx?, self.last_rx?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000_000; // 1 cycle = 1 ns

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = Tracker::new(HZ);
        for seq in 0..1000 {
            t.record(0, seq, seq * 100, seq * 100 + 50, 60);
        }
        assert_eq!(
            t.totals(),
            Totals {
                unique: 1000,
                ..Totals::default()
            }
        );
        assert_eq!((t.received, t.bytes), (1000, 60_000));
        assert_eq!((t.latency_ns.min(), t.latency_ns.max()), (50, 50));
        let g = t.longest_gap().unwrap();
        assert_eq!((g.cycles, g.missing()), (100, 0));
    }

    #[test]
    fn loss_reorder_duplicates() {
        let mut t = Tracker::new(HZ);
        let order = [0u64, 1, 3, 2, 2, 5, 4, 5, 9];
        for (i, &seq) in order.iter().enumerate() {
            t.record(0, seq, 0, i as u64, 60);
        }
        let tot = t.totals();
        // Unique: 0 1 2 3 4 5 9 = 7; duplicates: 2, 5; reordered: 2 (after 3), 4 (after 5).
        assert_eq!((tot.unique, tot.duplicates, tot.reordered), (7, 2, 2));
        assert_eq!(t.received, 9);
        // Loss against 10 sent (0..=9): 10 - 7 = 3 (6, 7, 8).
        assert_eq!(10 - tot.unique, 3);
    }

    #[test]
    fn longest_gap_reports_time_and_missing_range() {
        let mut t = Tracker::new(HZ);
        // 1 packet per µs; nothing arrives between seq 499 (t=499 µs) and seq 800
        // (t=800 µs + 300 ms): a 300 ms outage that swallowed 300 packets.
        for seq in 0..500u64 {
            t.record(0, seq, seq * 1000, seq * 1000 + 10, 60);
        }
        for seq in 800..900u64 {
            t.record(0, seq, seq * 1000, seq * 1000 + 300_000_000, 60);
        }
        let g = t.longest_gap().unwrap();
        assert_eq!(g.cycles, 300_000_000 + 301_000 - 10);
        assert_eq!(
            (g.seq_before, g.seq_after, g.missing()),
            (Some(499), 800, 300)
        );
        assert_eq!(g.start_tsc, 499_010);
    }

    #[test]
    fn streams_are_independent_and_window_slides() {
        let mut t = Tracker::new(HZ);
        t.record(0, 5, 0, 1, 60);
        t.record(1, 5, 0, 2, 60);
        assert_eq!(t.totals().duplicates, 0);
        // Jump beyond the window, then a very old packet and a recent duplicate.
        t.record(0, 5 + 3 * WINDOW, 0, 3, 60);
        t.record(0, 6, 0, 4, 60);
        t.record(0, 5 + 3 * WINDOW, 0, 5, 60);
        // A number inside the window whose bit is clear is new (reordered), not a duplicate.
        t.record(0, 5 + 2 * WINDOW + 1, 0, 6, 60);
        let tot = t.totals();
        assert_eq!((tot.too_old, tot.duplicates), (1, 1));
        assert_eq!(t.unique_of(0), 4);
        assert_eq!(t.unique_of(1), 1);
        assert_eq!(t.unique_of(7), 0);
    }
}
