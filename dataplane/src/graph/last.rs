//! [`LastLookup`]: a node's memory of its last lookup within one frame. A frame's packets
//! mostly share a few keys (destination, VNI, remote host), and the snapshot a lookup reads
//! cannot change while a node runs over a frame, so a repeated key can reuse the answer.
//! Made fresh for every frame: nothing is remembered across snapshots.

/// The last key looked up in this frame and its answer.
#[derive(Debug)]
pub struct LastLookup<K, V> {
    last: Option<(K, V)>,
}

impl<K: Copy + PartialEq, V: Copy> LastLookup<K, V> {
    /// Nothing looked up yet.
    #[inline(always)]
    pub const fn new() -> Self {
        LastLookup { last: None }
    }

    /// The answer for `key`: the remembered one if `key` is the last key, else `lookup()`'s
    /// (then remembered).
    ///
    /// Returns a reference to the remembered answer rather than a copy: a hit then reads
    /// only the fields the caller uses, from where the miss stored them frames ago. A copy
    /// is written with vector stores and read back field by field at once, and a field that
    /// straddles two halves of such a store cannot be forwarded from it: on the east-west
    /// path that stall cost ~14 clocks per packet in `overlay-output`.
    #[inline(always)]
    pub fn get(&mut self, key: K, lookup: impl FnOnce() -> V) -> &V {
        if !matches!(&self.last, Some((k, _)) if *k == key) {
            self.last = None;
        }
        &self.last.get_or_insert_with(|| (key, lookup())).1
    }
}

impl<K: Copy + PartialEq, V: Copy> Default for LastLookup<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_again_only_when_the_key_changes() {
        let mut calls = 0;
        let mut last = LastLookup::new();
        let answers: Vec<u32> = [1u32, 1, 2, 2, 1, 3, 3]
            .iter()
            .map(|&k| {
                *last.get(k, || {
                    calls += 1;
                    k * 10
                })
            })
            .collect();
        assert_eq!(answers, [10, 10, 20, 20, 10, 30, 30]);
        assert_eq!(calls, 4, "keys 1, 2, 1, 3");
    }
}
