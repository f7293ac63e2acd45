//! The adjacency list the FIB points into: deduplicated (every route via the same gateway
//! shares one entry), reference counted, with freed slots reused. Gateway MACs are not
//! stored here; [`AdjacencyTable::render`] fills them in from the neighbour table.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::error::StateError;
use super::neighbour::NeighbourTable;
use super::Adjacency;
use crate::fib::Fib;

/// What an adjacency is, without the resolved MAC (the deduplication key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdjKey {
    /// Deliver locally.
    Local,
    /// Destination is the neighbour, on this port.
    Attached(u16),
    /// Via this gateway on this port.
    Gateway(u16, Ipv4Addr),
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: AdjKey,
    refs: u32,
}

/// Adjacencies by FIB next-hop index.
#[derive(Debug, Clone, Default)]
pub struct AdjacencyTable {
    slots: Vec<Slot>,
    index: HashMap<AdjKey, u32>,
    free: Vec<u32>,
    /// Bumped on every change of the set of adjacencies.
    version: u64,
    /// Set when a gateway adjacency appears or disappears (neighbour pins need a resync).
    gateways_changed: bool,
}

/// Most adjacencies the table hands out (far below what the FIB can encode).
const MAX_ADJACENCIES: u32 = 1 << 24;

impl AdjacencyTable {
    /// Takes a reference on the adjacency for `key`, creating it if needed; returns its index.
    pub fn acquire(&mut self, key: AdjKey) -> Result<u32, StateError> {
        if let Some(&i) = self.index.get(&key) {
            self.slots[i as usize].refs += 1;
            return Ok(i);
        }
        let slot = Slot { key, refs: 1 };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                let i = self.slots.len() as u32;
                if i >= MAX_ADJACENCIES.min(Fib::MAX_NEXT_HOP) {
                    return Err(StateError::TooManyAdjacencies {
                        max: MAX_ADJACENCIES,
                    });
                }
                self.slots.push(slot);
                i
            }
        };
        self.index.insert(key, i);
        self.version += 1;
        self.gateways_changed |= matches!(key, AdjKey::Gateway(..));
        Ok(i)
    }

    /// Drops a reference taken by [`AdjacencyTable::acquire`]; the last one frees the slot.
    pub fn release(&mut self, i: u32) {
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        if slot.refs == 0 {
            return;
        }
        slot.refs -= 1;
        if slot.refs == 0 {
            let key = slot.key;
            self.index.remove(&key);
            self.free.push(i);
            self.version += 1;
            self.gateways_changed |= matches!(key, AdjKey::Gateway(..));
        }
    }

    /// The key of adjacency `i`, if in use.
    pub fn key(&self, i: u32) -> Option<AdjKey> {
        self.slots
            .get(i as usize)
            .filter(|s| s.refs > 0)
            .map(|s| s.key)
    }

    /// Number of adjacencies in use.
    pub fn in_use(&self) -> usize {
        self.index.len()
    }

    /// Changes whenever an adjacency is created or freed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Returns (and clears) whether the set of gateways changed.
    pub fn take_gateways_changed(&mut self) -> bool {
        std::mem::take(&mut self.gateways_changed)
    }

    /// Every gateway in use, as (port, address).
    pub fn gateways(&self) -> impl Iterator<Item = (u16, Ipv4Addr)> + '_ {
        self.index.keys().filter_map(|k| match *k {
            AdjKey::Gateway(port, gw) => Some((port, gw)),
            _ => None,
        })
    }

    /// The adjacency array workers index, with gateway MACs from `neighbours`. Free slots
    /// (no FIB entry points at them) become `Blackhole`.
    pub fn render(&self, neighbours: &NeighbourTable) -> Arc<[Adjacency]> {
        self.slots
            .iter()
            .map(|s| match (s.refs, s.key) {
                (0, _) => Adjacency::Blackhole,
                (_, key) => to_adjacency(key, neighbours),
            })
            .collect()
    }
}

/// The worker-facing form of `key`.
pub fn to_adjacency(key: AdjKey, neighbours: &NeighbourTable) -> Adjacency {
    match key {
        AdjKey::Local => Adjacency::Local,
        AdjKey::Attached(port) => Adjacency::Attached { port },
        AdjKey::Gateway(port, gw) => Adjacency::Gateway {
            port,
            gw,
            mac: neighbours.lookup(port, gw),
        },
        AdjKey::Blackhole => Adjacency::Blackhole,
        AdjKey::Unreachable => Adjacency::Unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_counts_and_reuses_slots() {
        let mut t = AdjacencyTable::default();
        let gw = AdjKey::Gateway(0, Ipv4Addr::new(10, 0, 1, 2));
        let a = t.acquire(gw).unwrap();
        let b = t.acquire(AdjKey::Local).unwrap();
        assert_eq!(t.acquire(gw).unwrap(), a);
        assert!(t.take_gateways_changed());
        assert!(!t.take_gateways_changed());
        t.release(a);
        assert_eq!(t.key(a), Some(gw));
        t.release(a);
        assert_eq!(t.key(a), None);
        assert!(t.take_gateways_changed());
        assert_eq!(t.in_use(), 1);
        let c = t.acquire(AdjKey::Blackhole).unwrap();
        assert_eq!(c, a, "freed slot reused");
        let rendered = t.render(&NeighbourTable::default());
        assert_eq!(rendered[b as usize], Adjacency::Local);
        assert_eq!(rendered[c as usize], Adjacency::Blackhole);
        t.release(b);
        t.release(b); // extra releases are ignored
        assert_eq!(t.in_use(), 1);
    }
}
