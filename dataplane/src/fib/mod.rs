//! IPv4 longest-prefix match: a DIR-24-8 table (like DPDK's `rte_lpm`/`rte_fib`) in safe
//! Rust. Owns the route list (prefix → next hop) and keeps the lookup tables in
//! `dir24` consistent with it on every insert and remove.
//!
//! Workers call [`Fib::lookup`] / [`Fib::lookup_bulk`]; both are allocation-free and take one
//! memory access per packet (two for destinations under a route longer than /24). The
//! control thread clones a published `Fib` (cheap: the tables are shared copy-on-write
//! chunks), changes the clone and publishes it.
//!
//! How a change is applied: a route owns the addresses of its prefix that no more specific
//! route covers (its *exposed* part). Insert paints the new route's exposed part with its
//! next hop; remove paints it with the next hop of the closest less specific route (or
//! [`Fib::MISS`]). So each change touches only the entries whose answer changes.

mod dir24;
mod prefix;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Bound;

use dir24::Dir24;
pub use prefix::Prefix;

/// Why a FIB change was refused. A refused change leaves the table untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    /// Prefix length above 32.
    #[error("prefix {addr}/{len}: length must be 0..=32")]
    BadLength {
        /// Address as given.
        addr: Ipv4Addr,
        /// Length as given.
        len: u8,
    },
    /// Address has bits set beyond the prefix length.
    #[error("prefix {addr}/{len} has host bits set (the network is {network}/{len})")]
    HostBits {
        /// Address as given.
        addr: Ipv4Addr,
        /// Length as given.
        len: u8,
        /// The address with host bits cleared.
        network: Ipv4Addr,
    },
    /// Text that is not `a.b.c.d/len`.
    #[error("{text:?} is not an IPv4 prefix (a.b.c.d/len)")]
    Syntax {
        /// The text as given.
        text: String,
    },
    /// Next hop too large for the table encoding.
    #[error("next hop {nh} is out of range (at most {max})")]
    NextHopRange {
        /// Next hop as given.
        nh: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// Remove of a prefix that has no route.
    #[error("no route for {prefix}")]
    NotFound {
        /// The prefix asked for.
        prefix: Prefix,
    },
    /// Too many /24s hold routes longer than /24.
    #[error(
        "route {prefix}: all {limit} tbl8 groups are in use (too many /24s with longer routes)"
    )]
    Tbl8Exhausted {
        /// The route that needed a group.
        prefix: Prefix,
        /// The configured limit.
        limit: u32,
    },
}

/// A longest-prefix-match table from IPv4 destinations to next-hop indices.
#[derive(Clone)]
pub struct Fib {
    table: Dir24,
    routes: BTreeMap<Prefix, u32>,
}

impl Fib {
    /// What [`Fib::lookup_bulk`] writes for a destination without a route.
    pub const MISS: u32 = dir24::MISS;
    /// Largest next-hop value accepted by [`Fib::insert`] (2^31 − 1).
    pub const MAX_NEXT_HOP: u32 = dir24::MAX_NEXT_HOP;
    /// Default limit of tbl8 groups (1 KiB each, allocated on demand): the number of
    /// distinct /24s that may hold routes longer than /24.
    pub const DEFAULT_TBL8_GROUPS: u32 = 1 << 16;

    /// An empty table with the default tbl8 group limit.
    pub fn new() -> Fib {
        Self::with_tbl8_groups(Self::DEFAULT_TBL8_GROUPS)
    }

    /// An empty table allowing up to `groups` tbl8 groups (at most 2^24).
    pub fn with_tbl8_groups(groups: u32) -> Fib {
        Fib {
            table: Dir24::new(groups),
            routes: BTreeMap::new(),
        }
    }

    /// Adds the route `prefix/len → nh`, replacing the next hop if the route exists.
    pub fn insert(&mut self, prefix: Ipv4Addr, len: u8, nh: u32) -> Result<(), FibError> {
        self.insert_prefix(Prefix::new(prefix, len)?, nh)
    }

    /// [`Fib::insert`] for an already validated prefix.
    pub fn insert_prefix(&mut self, prefix: Prefix, nh: u32) -> Result<(), FibError> {
        if nh > Self::MAX_NEXT_HOP {
            return Err(FibError::NextHopRange {
                nh,
                max: Self::MAX_NEXT_HOP,
            });
        }
        if self.routes.get(&prefix) == Some(&nh) {
            return Ok(());
        }
        if prefix.length() > 24 && !self.table.split(prefix.bits() >> 8) {
            return Err(FibError::Tbl8Exhausted {
                prefix,
                limit: self.table.max_groups(),
            });
        }
        self.routes.insert(prefix, nh);
        self.paint_exposed(prefix, nh);
        Ok(())
    }

    /// Removes the route for `prefix/len`, returning its next hop.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<u32, FibError> {
        self.remove_prefix(Prefix::new(prefix, len)?)
    }

    /// [`Fib::remove`] for an already validated prefix.
    pub fn remove_prefix(&mut self, prefix: Prefix) -> Result<u32, FibError> {
        let nh = self
            .routes
            .remove(&prefix)
            .ok_or(FibError::NotFound { prefix })?;
        let parent = self.covering_next_hop(prefix);
        self.paint_exposed(prefix, parent);
        if prefix.length() > 24 {
            let idx = prefix.bits() >> 8;
            if !self.has_long_routes(idx) {
                self.table.merge(idx);
            }
        }
        Ok(nh)
    }

    /// The next hop for `dst` (host-order IPv4), or `None` if no route covers it.
    #[inline]
    pub fn lookup(&self, dst: u32) -> Option<u32> {
        let nh = self.table.lookup(dst);
        (nh != Self::MISS).then_some(nh)
    }

    /// Looks up every destination in `dsts` (host-order IPv4) into the same position of
    /// `out`, writing [`Fib::MISS`] where no route matches. Only `min(dsts.len(), out.len())`
    /// entries are processed; callers pass equal lengths.
    #[inline]
    pub fn lookup_bulk(&self, dsts: &[u32], out: &mut [u32]) {
        debug_assert_eq!(dsts.len(), out.len());
        self.table.lookup_bulk(dsts, out);
    }

    /// The next hop of exactly `prefix` (not a longest match).
    pub fn get(&self, prefix: &Prefix) -> Option<u32> {
        self.routes.get(prefix).copied()
    }

    /// All routes as `(prefix, len, next hop)`, sorted by address then length.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        self.routes
            .iter()
            .map(|(p, &nh)| (p.addr(), p.length(), nh))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True if the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// tbl8 groups in use (each is 1 KiB).
    pub fn tbl8_groups(&self) -> u32 {
        self.table.groups_in_use()
    }

    /// The tbl8 group limit this table was created with.
    pub fn tbl8_limit(&self) -> u32 {
        self.table.max_groups()
    }

    /// True if a route of `prefix` could be inserted without running out of tbl8 groups.
    pub fn has_room_for(&self, prefix: &Prefix) -> bool {
        prefix.length() <= 24 || self.table.has_group(prefix.bits() >> 8) || self.table.can_split()
    }

    /// Paints every address of `prefix` not covered by a more specific route with `value`.
    fn paint_exposed(&mut self, prefix: Prefix, value: u32) {
        let end = u64::from(prefix.last()) + 1;
        let mut cursor = u64::from(prefix.first());
        let last_child = Prefix::new(Ipv4Addr::from(prefix.last()), 32).expect("a /32");
        let children = self
            .routes
            .range((Bound::Excluded(prefix), Bound::Included(last_child)));
        for (child, _) in children {
            let start = u64::from(child.first());
            if start < cursor {
                continue; // inside a more specific route already skipped
            }
            self.table.paint(cursor, start, value);
            cursor = u64::from(child.last()) + 1;
        }
        self.table.paint(cursor, end, value);
    }

    /// The next hop of the closest route strictly less specific than `prefix`, or MISS.
    fn covering_next_hop(&self, prefix: Prefix) -> u32 {
        (0..prefix.length())
            .rev()
            .find_map(|len| {
                let parent = Prefix::truncate(prefix.addr(), len).expect("len < 32");
                self.routes.get(&parent).copied()
            })
            .unwrap_or(Self::MISS)
    }

    /// True if /24 number `idx` contains a route longer than /24.
    fn has_long_routes(&self, idx: u32) -> bool {
        let base = idx << 8;
        let lo = Prefix::new(Ipv4Addr::from(base), 25).expect("a /24 start");
        let hi = Prefix::new(Ipv4Addr::from(base | 0xff), 32).expect("a /32");
        self.routes.range(lo..=hi).next().is_some()
    }
}

impl Default for Fib {
    fn default() -> Fib {
        Fib::new()
    }
}

impl fmt::Debug for Fib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib")
            .field("routes", &self.routes.len())
            .field("tbl8_groups", &self.table.groups_in_use())
            .finish()
    }
}
