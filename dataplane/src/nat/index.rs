//! A compact session index for [`super::NatTable`]: open addressing with linear probing over
//! 8-byte entries (a 32-bit hash tag and a session slot number), eight to a cache line,
//! backward-shift deletion (no tombstones), sized up front for the table's capacity at no more
//! than 7/8 load so every probe ends at an empty entry.
//!
//! The index does not hold keys: a tag match is confirmed by the caller against the session
//! itself (one more cache line, which [`SlotIndex::prefetch_slot`] lets a node fetch for a
//! whole frame ahead of time). The entry's home is derived from its tag, so deletion can move
//! entries back without re-reading their sessions. Nothing allocates after
//! [`SlotIndex::with_capacity`].

use crate::conntrack::table::{folded_mul, MUL};

/// At most `LOAD_NUM / LOAD_DEN` of the entries are used.
const LOAD_NUM: usize = 7;
/// See [`LOAD_NUM`].
const LOAD_DEN: usize = 8;

/// One index entry; `tag == 0` is empty.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(8))]
struct Entry {
    tag: u32,
    slot: u32,
}

/// Maps 64-bit key hashes to session slots; see the module documentation.
#[derive(Debug)]
pub struct SlotIndex {
    entries: Box<[Entry]>,
    mask: usize,
}

/// The non-zero tag of a hash (its high half); the home entry is `tag & mask`.
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// Hashes two key words with a seed (seeded folded multiply, as the connection table).
#[inline(always)]
pub fn hash2(a: u64, b: u64, seed: &[u64; 3]) -> u64 {
    let h = folded_mul(a ^ seed[0], b ^ seed[1]);
    folded_mul(h ^ seed[2], MUL)
}

impl SlotIndex {
    /// An index for at least `capacity` keys: `capacity * 8 / 7` entries rounded up to a
    /// power of two (at least 8), written once now so that no page faults come later.
    ///
    /// # Panics
    /// If that exceeds 2³¹ entries.
    pub fn with_capacity(capacity: usize) -> SlotIndex {
        let wanted = capacity
            .checked_mul(LOAD_DEN)
            .map(|n| n.div_ceil(LOAD_NUM).max(8))
            .and_then(usize::checked_next_power_of_two)
            .filter(|&n| n <= 1 << 31)
            .expect("NAT index capacity too large");
        let mut entries = Vec::with_capacity(wanted);
        crate::port::memory::advise_huge_pages(entries.spare_capacity_mut());
        entries.resize(wanted, Entry::default());
        SlotIndex {
            entries: entries.into_boxed_slice(),
            mask: wanted - 1,
        }
    }

    /// Keys the index takes at most (7/8 of its entries; the table refuses sessions first).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.entries.len() / LOAD_DEN * LOAD_NUM
    }

    /// Bytes of the entry array.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }

    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// Prefetches the home entry of `hash` (stage one of a frame's lookups).
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        crate::port::memory::prefetch(&self.entries[self.home(tag_of(hash))]);
    }

    /// The first slot whose tag matches `hash`, unconfirmed (stage two: the caller prefetches
    /// that session). Usually right; a wrong guess only costs a useless prefetch.
    #[inline(always)]
    pub fn prefetch_slot(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.tag == 0 {
                return None;
            }
            if e.tag == tag {
                return Some(e.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot of the key hashing to `hash`: the first entry with its tag for which `is`
    /// (comparing the full key in the session) says yes.
    #[inline(always)]
    pub fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.tag == 0 {
                return None;
            }
            if e.tag == tag && is(e.slot) {
                return Some(e.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Files `slot` under `hash`. The caller keeps the key count within
    /// [`SlotIndex::capacity`] (the session array is never larger) and does not file a key
    /// twice.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        while self.entries[i].tag != 0 {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = Entry { tag, slot };
    }

    /// Removes the entry filing `slot` under `hash`; returns whether there was one.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.tag == 0 {
                return false;
            }
            if e.tag == tag && e.slot == slot {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: pull later entries of the cluster into the hole when they stay
        // reachable from their home.
        let mask = self.mask;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e.tag == 0 {
                break;
            }
            let home = self.home(e.tag);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = Entry::default();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SEED: [u64; 3] = [1, 2, 3];

    #[test]
    fn finds_what_was_filed_and_nothing_after_removal() {
        let mut ix = SlotIndex::with_capacity(1000);
        assert!(ix.capacity() >= 1000);
        for k in 0..1000u64 {
            ix.insert(hash2(k, k * 7, &SEED), k as u32);
        }
        for k in 0..1000u64 {
            let h = hash2(k, k * 7, &SEED);
            assert_eq!(ix.find(h, |s| s == k as u32), Some(k as u32));
            assert_eq!(ix.prefetch_slot(h), Some(k as u32));
        }
        for k in (0..1000u64).step_by(2) {
            assert!(ix.remove(hash2(k, k * 7, &SEED), k as u32));
            assert!(!ix.remove(hash2(k, k * 7, &SEED), k as u32));
        }
        for k in 0..1000u64 {
            let found = ix.find(hash2(k, k * 7, &SEED), |s| s == k as u32);
            assert_eq!(found.is_some(), k % 2 == 1, "key {k}");
        }
    }

    /// Random inserts and removals in a small, crowded index (long clusters, wrap-around)
    /// against a HashMap.
    #[test]
    fn crowded_index_matches_a_hash_map() {
        let mut ix = SlotIndex::with_capacity(56);
        let cap = ix.capacity();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x = 0x1234_5678_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..20_000u32 {
            let key = next() % 97;
            // Few distinct hashes on purpose: tags collide, so `find` must confirm.
            let h = hash2(key, 0, &SEED) & 0xffff_00ff_0000_003f;
            if let Some(&slot) = model.get(&key) {
                assert_eq!(ix.find(h, |s| s == slot), Some(slot), "step {step}");
                if next() % 2 == 0 {
                    assert!(ix.remove(h, slot));
                    model.remove(&key);
                }
            } else if model.len() < cap {
                ix.insert(h, step);
                model.insert(key, step);
            }
        }
        for (&key, &slot) in &model {
            let h = hash2(key, 0, &SEED) & 0xffff_00ff_0000_003f;
            assert_eq!(ix.find(h, |s| s == slot), Some(slot));
        }
    }
}
