//! The DIR-24-8 lookup tables themselves: `tbl24` indexed by the top 24 bits of the
//! destination, plus 256-entry `tbl8` groups for /24s that hold longer routes. This file
//! knows nothing about routes; [`super::Fib`] decides what to paint where.
//!
//! Both tables are stored in fixed-size chunks behind [`Arc`], so cloning the table (the
//! control thread does it for every published change) copies only pointers, and a change
//! copies only the chunks it writes (copy-on-write). A fresh table shares one all-miss chunk.
//!
//! Entry encoding (the same in both tables): a next hop `< 2^31`, [`MISS`], or — in tbl24
//! only — `PTR_TAG | group` pointing at a tbl8 group.

use std::sync::Arc;

/// Value of an entry with no route; also what bulk lookups write for a miss.
pub const MISS: u32 = u32::MAX;
/// Largest next-hop value an entry can hold.
pub const MAX_NEXT_HOP: u32 = 0x7fff_ffff;

const PTR_TAG: u32 = 0x8000_0000;
const PTR_TAG_MASK: u32 = 0xff00_0000;
const GROUP_MASK: u32 = 0x00ff_ffff;
/// Largest number of tbl8 groups the encoding can address.
pub const MAX_GROUPS: u32 = GROUP_MASK + 1;

const TBL24_CHUNKS: usize = 256;
const TBL24_CHUNK: usize = 1 << 16;
const GROUP: usize = 256;
const GROUPS_PER_CHUNK: usize = 64;
const TBL8_CHUNK: usize = GROUP * GROUPS_PER_CHUNK;

type Tbl24Chunk = [u32; TBL24_CHUNK];
type Tbl8Chunk = [u32; TBL8_CHUNK];

/// The two lookup tables and the tbl8 group allocator.
#[derive(Clone)]
pub(super) struct Dir24 {
    tbl24: [Arc<Tbl24Chunk>; TBL24_CHUNKS],
    tbl8: Vec<Arc<Tbl8Chunk>>,
    free_groups: Vec<u32>,
    /// Groups ever handed out (the next fresh group number).
    high_water: u32,
    max_groups: u32,
}

impl Dir24 {
    /// Empty tables (every entry [`MISS`]) allowing up to `max_groups` tbl8 groups.
    pub(super) fn new(max_groups: u32) -> Dir24 {
        let empty: Arc<Tbl24Chunk> = filled(MISS);
        Dir24 {
            tbl24: std::array::from_fn(|_| Arc::clone(&empty)),
            tbl8: Vec::new(),
            free_groups: Vec::new(),
            high_water: 0,
            max_groups: max_groups.min(MAX_GROUPS),
        }
    }

    /// Looks one destination up: a next hop or [`MISS`].
    #[inline(always)]
    pub(super) fn lookup(&self, dst: u32) -> u32 {
        let e = self.tbl24_entry(dst);
        if is_ptr(e) {
            self.tbl8_entry(e, dst)
        } else {
            e
        }
    }

    /// Looks up `dsts` into `out` (same length). Two passes: all tbl24 loads first, which are
    /// independent so the CPU overlaps their cache misses (in groups of four, which the
    /// compiler unrolls), then the tbl8 hops, skipped entirely when no entry of the burst
    /// has its top bit set (tbl8 pointers and [`MISS`] do; one OR per packet tracks that).
    /// The tbl8 pass branches rather than selecting: measured faster even with a third of
    /// the destinations under routes longer than /24.
    #[inline]
    pub(super) fn lookup_bulk(&self, dsts: &[u32], out: &mut [u32]) {
        let n = dsts.len().min(out.len());
        let (dsts, out) = (&dsts[..n], &mut out[..n]);
        let mut top = 0;
        let mut out4 = out.chunks_exact_mut(4);
        let mut dsts4 = dsts.chunks_exact(4);
        for (o4, d4) in (&mut out4).zip(&mut dsts4) {
            for (o, &d) in o4.iter_mut().zip(d4) {
                let e = self.tbl24_entry(d);
                top |= e;
                *o = e;
            }
        }
        for (o, &d) in out4.into_remainder().iter_mut().zip(dsts4.remainder()) {
            let e = self.tbl24_entry(d);
            top |= e;
            *o = e;
        }
        if top & PTR_TAG != 0 {
            for (o, &d) in out.iter_mut().zip(dsts) {
                if is_ptr(*o) {
                    *o = self.tbl8_entry(*o, d);
                }
            }
        }
    }

    #[inline(always)]
    fn tbl24_entry(&self, dst: u32) -> u32 {
        // Both indices are provably in range (u8 and u16), so no bounds checks.
        self.tbl24[(dst >> 24) as usize][((dst >> 8) & 0xffff) as usize]
    }

    #[inline(always)]
    fn tbl8_entry(&self, ptr: u32, dst: u32) -> u32 {
        let g = (ptr & GROUP_MASK) as usize;
        match self.tbl8.get(g / GROUPS_PER_CHUNK) {
            Some(chunk) => chunk[(g % GROUPS_PER_CHUNK) * GROUP + (dst & 0xff) as usize],
            None => MISS,
        }
    }

    /// The raw tbl24 entry for /24 number `idx` (`dst >> 8`).
    pub(super) fn tbl24_raw(&self, idx: u32) -> u32 {
        self.tbl24_entry(idx << 8)
    }

    /// True if /24 number `idx` is split into a tbl8 group.
    pub(super) fn has_group(&self, idx: u32) -> bool {
        is_ptr(self.tbl24_raw(idx))
    }

    /// Number of tbl8 groups in use.
    pub(super) fn groups_in_use(&self) -> u32 {
        self.high_water - self.free_groups.len() as u32
    }

    /// Configured tbl8 group limit.
    pub(super) fn max_groups(&self) -> u32 {
        self.max_groups
    }

    /// True if one more group can be allocated.
    pub(super) fn can_split(&self) -> bool {
        !self.free_groups.is_empty() || self.high_water < self.max_groups
    }

    /// Splits /24 number `idx` into a tbl8 group whose 256 entries take the current tbl24
    /// value. Returns false (changing nothing) when no group is left. No-op if already split.
    pub(super) fn split(&mut self, idx: u32) -> bool {
        let base = self.tbl24_raw(idx);
        if is_ptr(base) {
            return true;
        }
        let group = match self.free_groups.pop() {
            Some(g) => g,
            None if self.high_water < self.max_groups => {
                let g = self.high_water;
                self.high_water += 1;
                if g as usize / GROUPS_PER_CHUNK >= self.tbl8.len() {
                    self.tbl8.push(filled(MISS));
                }
                g
            }
            None => return false,
        };
        self.group_mut(group).fill(base);
        self.set_one(idx, PTR_TAG | group);
        true
    }

    /// Folds the tbl8 group of /24 number `idx` back into tbl24. The caller guarantees all
    /// 256 entries are equal (no route longer than /24 is left in it).
    pub(super) fn merge(&mut self, idx: u32) {
        let e = self.tbl24_raw(idx);
        if !is_ptr(e) {
            return;
        }
        let base = self.tbl8_entry(e, idx << 8);
        self.set_one(idx, base);
        self.free_groups.push(e & GROUP_MASK);
    }

    /// Writes `value` to every address in `[from, to)` (addresses as u64 so the range may
    /// end at 2^32). Whole /24s go to tbl24; partial /24s must already be split.
    pub(super) fn paint(&mut self, mut from: u64, to: u64, value: u32) {
        while from < to {
            if from & 0xff == 0 && to - from >= 256 {
                let lo = (from >> 8) as usize;
                let n = ((to - from) >> 8) as usize;
                self.set_tbl24(lo, lo + n, value);
                from += (n as u64) << 8;
            } else {
                let idx = (from >> 8) as u32;
                let end = to.min((u64::from(idx) + 1) << 8);
                let e = self.tbl24_raw(idx);
                debug_assert!(is_ptr(e), "partial /24 {idx:#x} painted without a group");
                if is_ptr(e) {
                    let lo = (from & 0xff) as usize;
                    let hi = lo + (end - from) as usize;
                    self.group_mut(e & GROUP_MASK)[lo..hi].fill(value);
                }
                from = end;
            }
        }
    }

    /// Sets tbl24 entries `[lo, hi)` to `value`. Whole /24s being painted never hold groups
    /// (the caller stops at every route longer than /24), which debug builds check.
    fn set_tbl24(&mut self, mut lo: usize, hi: usize, value: u32) {
        while lo < hi {
            let c = lo / TBL24_CHUNK;
            let end = hi.min((c + 1) * TBL24_CHUNK);
            let chunk = chunk_mut(&mut self.tbl24[c]);
            let range = lo % TBL24_CHUNK..(end - 1) % TBL24_CHUNK + 1;
            debug_assert!(
                chunk[range.clone()].iter().all(|&e| !is_ptr(e)),
                "painting over a tbl8 group"
            );
            chunk[range].fill(value);
            lo = end;
        }
    }

    /// Sets the single tbl24 entry of /24 number `idx` (group split and merge).
    fn set_one(&mut self, idx: u32, value: u32) {
        let idx = idx as usize;
        chunk_mut(&mut self.tbl24[idx / TBL24_CHUNK])[idx % TBL24_CHUNK] = value;
    }

    fn group_mut(&mut self, group: u32) -> &mut [u32] {
        let g = group as usize;
        let chunk = chunk_mut(&mut self.tbl8[g / GROUPS_PER_CHUNK]);
        let start = (g % GROUPS_PER_CHUNK) * GROUP;
        &mut chunk[start..start + GROUP]
    }
}

#[inline(always)]
fn is_ptr(e: u32) -> bool {
    e & PTR_TAG_MASK == PTR_TAG
}

/// A heap chunk with every entry `value`, built without a large stack temporary.
fn filled<const N: usize>(value: u32) -> Arc<[u32; N]> {
    let slice: Arc<[u32]> = Arc::from(vec![value; N]);
    slice.try_into().expect("iterator yields exactly N entries")
}

/// Unique access to a chunk, copying it first if a clone of the table still shares it.
fn chunk_mut<const N: usize>(chunk: &mut Arc<[u32; N]>) -> &mut [u32; N] {
    if Arc::get_mut(chunk).is_none() {
        let copy: Arc<[u32]> = Arc::from(&chunk[..]);
        *chunk = copy.try_into().expect("copy has the same length");
    }
    Arc::get_mut(chunk).expect("chunk is unique after the copy")
}
