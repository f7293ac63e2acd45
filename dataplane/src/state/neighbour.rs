//! The neighbour (ARP) table: a sans-I/O state machine per (port, IPv4 address).
//!
//! Inputs are method calls carrying the current time (`now`, a [`Duration`] since any fixed
//! origin the caller chooses — the table never reads a clock): ARP packets seen
//! ([`NeighbourTable::learn`]), worker misses ([`NeighbourTable::request`]), operator changes
//! ([`NeighbourTable::add_static`], [`NeighbourTable::remove`]) and timers
//! ([`NeighbourTable::tick`], due at [`NeighbourTable::poll_timeout`]). Outputs are
//! [`NeighbourAction`]s from [`NeighbourTable::poll_action`] (the caller builds and sends the
//! ARP request) and a [`NeighbourTable::generation`] that moves whenever the set of resolved
//! neighbours — what a snapshot carries — changes.
//!
//! States, as in Linux's neighbour code but without DELAY/PROBE (workers cannot report use):
//! - `Incomplete`: probes sent every `retrans_time`, up to `max_probes`, then `Failed`.
//! - `Reachable`: confirmed by a reply; after `reachable_time` becomes `Stale`.
//! - `Stale`: MAC still used; removed `gc_time` later unless pinned. Pinned entries (route
//!   gateways) are re-probed every `reachable_time` instead, so a reply makes them
//!   `Reachable` again.
//! - `Failed`: resolution gave up; requests are ignored for `failed_hold`, then the entry is
//!   removed (pinned ones start resolving again).
//! - `Static`: configured; never aged, never overwritten by ARP.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::Mac;

/// Timers and limits of a [`NeighbourTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// How long a confirmed entry stays `Reachable`.
    pub reachable_time: Duration,
    /// Interval between probes of an `Incomplete` entry.
    pub retrans_time: Duration,
    /// Probes sent before an entry becomes `Failed`.
    pub max_probes: u8,
    /// How long a `Failed` entry suppresses new resolution attempts.
    pub failed_hold: Duration,
    /// How long an unpinned `Stale` entry is kept.
    pub gc_time: Duration,
    /// Dynamic entries at most; beyond it new addresses are not learned or resolved.
    pub max_entries: usize,
}

impl Default for NeighbourConfig {
    fn default() -> NeighbourConfig {
        NeighbourConfig {
            reachable_time: Duration::from_secs(30),
            retrans_time: Duration::from_secs(1),
            max_probes: 3,
            failed_hold: Duration::from_secs(10),
            gc_time: Duration::from_secs(60),
            max_entries: 4096,
        }
    }
}

/// The state of one neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    /// Being resolved; `probes` ARP requests sent so far.
    Incomplete {
        /// Requests sent.
        probes: u8,
    },
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; its MAC is still used.
    Stale,
    /// Resolution failed; not retried for a while.
    Failed,
    /// Configured by the operator.
    Static,
}

impl NeighbourState {
    /// Lower-case name for display and the API.
    pub const fn name(self) -> &'static str {
        match self {
            NeighbourState::Incomplete { .. } => "incomplete",
            NeighbourState::Reachable => "reachable",
            NeighbourState::Stale => "stale",
            NeighbourState::Failed => "failed",
            NeighbourState::Static => "static",
        }
    }

    /// True if entries in this state give workers a MAC.
    pub const fn is_resolved(self) -> bool {
        matches!(
            self,
            NeighbourState::Reachable | NeighbourState::Stale | NeighbourState::Static
        )
    }
}

impl fmt::Display for NeighbourState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something the caller must do for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourAction {
    /// Broadcast an ARP request for `target_ip` out of `port`.
    SendArpRequest {
        /// Port to send on.
        port: u16,
        /// Address being resolved.
        target_ip: Ipv4Addr,
    },
}

/// One entry as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourInfo {
    /// Port index.
    pub port: u16,
    /// Neighbour address.
    pub ip: Ipv4Addr,
    /// Its MAC, once known.
    pub mac: Option<Mac>,
    /// Current state.
    pub state: NeighbourState,
    /// Time since the entry entered its state (or was last confirmed).
    pub age: Duration,
    /// True if a route uses it as gateway (kept and refreshed while pinned).
    pub pinned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Option<Mac>,
    state: NeighbourState,
    /// When the entry entered its state or was last confirmed.
    since: Duration,
    /// When `tick` must look at it next (unused for static entries).
    deadline: Duration,
}

impl Entry {
    fn resolved_mac(&self) -> Option<Mac> {
        if self.state.is_resolved() {
            self.mac
        } else {
            None
        }
    }
}

type Key = (u16, u32);

/// The neighbour table; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct NeighbourTable {
    config: NeighbourConfig,
    entries: BTreeMap<Key, Entry>,
    /// Pinned addresses with their pin count.
    pinned: BTreeMap<Key, u32>,
    actions: VecDeque<NeighbourAction>,
    generation: u64,
    dynamic: usize,
}

impl NeighbourTable {
    /// An empty table.
    pub fn new(config: NeighbourConfig) -> NeighbourTable {
        NeighbourTable {
            config,
            ..NeighbourTable::default()
        }
    }

    /// The table's timers and limits.
    pub fn config(&self) -> &NeighbourConfig {
        &self.config
    }

    /// An ARP packet showed that `ip` on `port` has `mac`. `solicited` is true for a reply
    /// addressed to us (confirms reachability), false for requests and gratuitous ARP.
    /// Static entries are never changed. Returns true if the resolved MAC changed.
    pub fn learn(
        &mut self,
        port: u16,
        ip: Ipv4Addr,
        mac: Mac,
        now: Duration,
        solicited: bool,
    ) -> bool {
        let key = (port, u32::from(ip));
        let config = self.config;
        let Some(entry) = self.entries.get_mut(&key) else {
            if self.dynamic >= config.max_entries {
                return false;
            }
            let (state, deadline) = if solicited {
                (NeighbourState::Reachable, config.reachable_time)
            } else {
                (NeighbourState::Stale, config.gc_time)
            };
            self.insert(key, Some(mac), state, now, deadline);
            self.generation += 1;
            return true;
        };
        let before = entry.resolved_mac();
        match (entry.state, solicited) {
            (NeighbourState::Static, _) => return false,
            (_, true) => {
                *entry = Entry {
                    mac: Some(mac),
                    state: NeighbourState::Reachable,
                    since: now,
                    deadline: now.saturating_add(config.reachable_time),
                };
            }
            (NeighbourState::Reachable, false) if entry.mac == Some(mac) => {}
            (_, false) => {
                // New information that nobody asked for: usable, but not confirmed.
                *entry = Entry {
                    mac: Some(mac),
                    state: NeighbourState::Stale,
                    since: now,
                    deadline: now.saturating_add(config.gc_time),
                };
            }
        }
        let changed = entry.resolved_mac() != before;
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// A worker had no MAC for `ip` on `port`: start resolving it unless that is already
    /// under way, known, or failed recently.
    pub fn request(&mut self, port: u16, ip: Ipv4Addr, now: Duration) {
        let key = (port, u32::from(ip));
        if self.entries.contains_key(&key) || self.dynamic >= self.config.max_entries {
            return;
        }
        self.start_resolving(key, now);
    }

    /// Adds or replaces a static entry (never aged or overwritten by ARP).
    pub fn add_static(&mut self, port: u16, ip: Ipv4Addr, mac: Mac) {
        let key = (port, u32::from(ip));
        let before = self.entries.get(&key).and_then(Entry::resolved_mac);
        if let Some(old) = self.entries.remove(&key) {
            if old.state != NeighbourState::Static {
                self.dynamic -= 1;
            }
        }
        let entry = Entry {
            mac: Some(mac),
            state: NeighbourState::Static,
            since: Duration::ZERO,
            deadline: Duration::MAX,
        };
        self.entries.insert(key, entry);
        if before != Some(mac) {
            self.generation += 1;
        }
    }

    /// Removes the entry for `ip` on `port` (static or dynamic). Returns true if there was one.
    pub fn remove(&mut self, port: u16, ip: Ipv4Addr) -> bool {
        self.remove_key((port, u32::from(ip)))
    }

    /// Removes every dynamic entry of `port` (e.g. when the port goes down or loses an
    /// address); static entries stay.
    pub fn flush_port(&mut self, port: u16) {
        let keys: Vec<Key> = self
            .entries
            .range((port, 0)..=(port, u32::MAX))
            .filter(|(_, e)| e.state != NeighbourState::Static)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.remove_key(key);
        }
    }

    /// Marks `ip` on `port` as needed by a route: it is resolved proactively at the next
    /// tick, refreshed instead of aged out, and retried after failures. Pins are counted.
    pub fn pin(&mut self, port: u16, ip: Ipv4Addr) {
        *self.pinned.entry((port, u32::from(ip))).or_insert(0) += 1;
    }

    /// Drops one pin taken by [`NeighbourTable::pin`].
    pub fn unpin(&mut self, port: u16, ip: Ipv4Addr) {
        let key = (port, u32::from(ip));
        if let Some(n) = self.pinned.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.pinned.remove(&key);
            }
        }
    }

    /// Replaces every pin with exactly `keys` (each pinned once).
    pub fn set_pinned(&mut self, keys: impl IntoIterator<Item = (u16, Ipv4Addr)>) {
        self.pinned = keys
            .into_iter()
            .map(|(port, ip)| ((port, u32::from(ip)), 1))
            .collect();
    }

    /// Runs every timer due at `now`: probes, ageing, garbage collection.
    pub fn tick(&mut self, now: Duration) {
        let missing: Vec<Key> = self
            .pinned
            .keys()
            .filter(|k| !self.entries.contains_key(k))
            .copied()
            .collect();
        for key in missing {
            self.start_resolving(key, now);
        }
        let due: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state != NeighbourState::Static && e.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.expire(key, now);
        }
    }

    /// When [`NeighbourTable::tick`] next has work (`None`: nothing scheduled). Pinned
    /// addresses without an entry are due immediately (`Duration::ZERO`).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.pinned.keys().any(|k| !self.entries.contains_key(k)) {
            return Some(Duration::ZERO);
        }
        self.entries
            .values()
            .filter(|e| e.state != NeighbourState::Static)
            .map(|e| e.deadline)
            .min()
    }

    /// The next thing the caller must do, if any.
    pub fn poll_action(&mut self) -> Option<NeighbourAction> {
        self.actions.pop_front()
    }

    /// Moves whenever the resolved set (what [`NeighbourTable::resolved`] yields) changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The MAC of `ip` on `port` if resolved.
    pub fn lookup(&self, port: u16, ip: Ipv4Addr) -> Option<Mac> {
        self.entries
            .get(&(port, u32::from(ip)))
            .and_then(Entry::resolved_mac)
    }

    /// Every resolved neighbour as (port, address, MAC), sorted.
    pub fn resolved(&self) -> impl Iterator<Item = (u16, Ipv4Addr, Mac)> + '_ {
        self.entries
            .iter()
            .filter_map(|(&(port, ip), e)| Some((port, Ipv4Addr::from(ip), e.resolved_mac()?)))
    }

    /// Every entry for display, sorted by port then address.
    pub fn entries(&self, now: Duration) -> impl Iterator<Item = NeighbourInfo> + '_ {
        self.entries
            .iter()
            .map(move |(&(port, ip), e)| NeighbourInfo {
                port,
                ip: Ipv4Addr::from(ip),
                mac: e.mac,
                state: e.state,
                age: now.saturating_sub(e.since),
                pinned: self.pinned.contains_key(&(port, ip)),
            })
    }

    /// Number of entries in every state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn start_resolving(&mut self, key: Key, now: Duration) {
        let state = NeighbourState::Incomplete { probes: 1 };
        self.insert(key, None, state, now, self.config.retrans_time);
        self.probe(key);
    }

    /// A timer of `key` fired.
    fn expire(&mut self, key: Key, now: Duration) {
        let config = self.config;
        let pinned = self.pinned.contains_key(&key);
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let mut probe = false;
        match entry.state {
            NeighbourState::Incomplete { probes } if probes < config.max_probes => {
                entry.state = NeighbourState::Incomplete { probes: probes + 1 };
                entry.deadline = now.saturating_add(config.retrans_time);
                probe = true;
            }
            NeighbourState::Incomplete { .. } => {
                entry.state = NeighbourState::Failed;
                entry.since = now;
                entry.deadline = now.saturating_add(config.failed_hold);
            }
            NeighbourState::Reachable => {
                entry.state = NeighbourState::Stale;
                entry.since = now;
                if pinned {
                    entry.deadline = now.saturating_add(config.reachable_time);
                    probe = true;
                } else {
                    entry.deadline = now.saturating_add(config.gc_time);
                }
            }
            NeighbourState::Stale if pinned => {
                entry.deadline = now.saturating_add(config.reachable_time);
                probe = true;
            }
            NeighbourState::Failed if pinned => {
                self.remove_key(key);
                self.start_resolving(key, now);
            }
            NeighbourState::Stale | NeighbourState::Failed => {
                self.remove_key(key);
            }
            NeighbourState::Static => {}
        }
        if probe {
            self.probe(key);
        }
    }

    fn insert(
        &mut self,
        key: Key,
        mac: Option<Mac>,
        state: NeighbourState,
        now: Duration,
        timer: Duration,
    ) {
        let entry = Entry {
            mac,
            state,
            since: now,
            deadline: now.saturating_add(timer),
        };
        if self.entries.insert(key, entry).is_none() {
            self.dynamic += 1;
        }
    }

    fn remove_key(&mut self, key: Key) -> bool {
        let Some(old) = self.entries.remove(&key) else {
            return false;
        };
        if old.state != NeighbourState::Static {
            self.dynamic -= 1;
        }
        if old.resolved_mac().is_some() {
            self.generation += 1;
        }
        true
    }

    fn probe(&mut self, (port, ip): Key) {
        self.actions.push_back(NeighbourAction::SendArpRequest {
            port,
            target_ip: Ipv4Addr::from(ip),
        });
    }
}

#[cfg(test)]
mod tests;
