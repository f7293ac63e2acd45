//! One worker's NAT sessions: inside → outside and outside → inside lookups, outside-port
//! allocation from the worker's own slice ([`super::ports`]), endpoint-independent and
//! endpoint-dependent source NAT, floating IPs, TCP-aware timeouts, and the session events
//! the master streams to its backups. Everything is allocated up front: a full table refuses
//! new sessions ([`NatError::Full`]) instead of growing.
//!
//! Sessions sit in one array; two compact indexes (`super::index`) find them by inside and
//! by outside key, so a hit costs one index line and one session line, both of which a node
//! can prefetch for a whole frame first ([`NatTable::prefetch_inside`] or
//! [`NatTable::prefetch_outside`], then [`NatTable::prefetch_session`]).

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

use aegis_sessionsync::{NatKind, Op, Record, SessionKey};

use super::index::{hash2, SlotIndex};
use super::ports::{self, PortSlice};
use crate::conntrack::table::splitmix64;

/// A session from the inside: the VM's endpoint and the remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsideKey {
    /// VNI of the VM's VPC.
    pub vpc: u32,
    /// IP protocol.
    pub proto: u8,
    /// VM address.
    pub inside_ip: u32,
    /// VM port (ICMP: echo id).
    pub inside_port: u16,
    /// Remote address.
    pub remote_ip: u32,
    /// Remote port.
    pub remote_port: u16,
}

impl InsideKey {
    /// The key's hash under `seed`.
    #[inline(always)]
    fn hash(&self, seed: &[u64; 3]) -> u64 {
        let a = u64::from(self.inside_ip) << 32 | u64::from(self.remote_ip);
        let b = u64::from(self.vpc) << 32
            | u64::from(self.inside_port) << 16
            | u64::from(self.remote_port);
        hash2(a, b ^ u64::from(self.proto) << 56, seed)
    }
}

/// A session from the outside: what a reply is addressed to, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutsideKey {
    /// IP protocol.
    pub proto: u8,
    /// Our outside address.
    pub outside_ip: u32,
    /// Our outside port.
    pub outside_port: u16,
    /// Remote address.
    pub remote_ip: u32,
    /// Remote port.
    pub remote_port: u16,
}

impl OutsideKey {
    /// The key's hash under `seed`.
    #[inline(always)]
    fn hash(&self, seed: &[u64; 3]) -> u64 {
        let a = u64::from(self.outside_ip) << 32 | u64::from(self.remote_ip);
        let b = u64::from(self.proto) << 32
            | u64::from(self.outside_port) << 16
            | u64::from(self.remote_port);
        hash2(a, b, seed)
    }
}

/// How a new outbound session is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Source NAT to `ip`; endpoint-dependent: a new port per remote, independent: one per
    /// inside endpoint whatever the remote.
    Snat {
        /// Outside address.
        ip: u32,
        /// Endpoint-dependent mapping.
        endpoint_dependent: bool,
    },
    /// 1:1 to this floating IP, ports unchanged.
    FloatingIp {
        /// The floating IP.
        ip: u32,
    },
}

/// Why a session was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// The table is full.
    Full,
    /// No free outside port in this worker's slice for that remote.
    NoPort,
    /// A floating IP's port is in use towards that remote by another session.
    Conflict,
    /// A synced source NAT session whose outside port is in another worker's slice (a
    /// backup running a different number of workers than its master).
    OtherSlice,
}

/// Session timeouts, nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct NatTimeouts {
    /// TCP before the handshake completes, and after FIN or RST.
    pub tcp_transitory: u64,
    /// Established TCP.
    pub tcp_established: u64,
    /// UDP.
    pub udp: u64,
    /// ICMP echo.
    pub icmp: u64,
}

impl Default for NatTimeouts {
    /// VPP's NAT defaults: 240 s, 7440 s, 300 s, 60 s.
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        NatTimeouts {
            tcp_transitory: 240 * S,
            tcp_established: 7440 * S,
            udp: 300 * S,
            icmp: 60 * S,
        }
    }
}

/// TCP progress of a session (what the timeout depends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpPhase {
    /// Not TCP.
    None = 0,
    /// SYN seen, no reply yet.
    Opening = 1,
    /// Traffic both ways.
    Established = 2,
    /// FIN or RST seen.
    Closing = 3,
}

/// One session: one cache line (aligned so a lookup touches exactly one line of the
/// session array).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct Session {
    /// Inside view.
    pub inside: InsideKey,
    /// Outside address.
    pub outside_ip: u32,
    /// Outside port.
    pub outside_port: u16,
    /// Translation kind.
    pub kind: NatKind,
    /// TCP progress.
    pub phase: TcpPhase,
    /// Last packet, ns.
    pub last_ns: u64,
    /// Replies seen.
    pub replied: bool,
    /// When the last sync event about it was produced, ns (a refresh is due after half
    /// its timeout, so a backup never expires a session the master keeps alive).
    pub synced_ns: u64,
}

impl Session {
    fn outside_key(&self) -> OutsideKey {
        OutsideKey {
            proto: self.inside.proto,
            outside_ip: self.outside_ip,
            outside_port: self.outside_port,
            remote_ip: self.inside.remote_ip,
            remote_port: self.inside.remote_port,
        }
    }

    /// The session as session sync carries it.
    pub fn record(&self, op: Op, now_ns: u64, t: &NatTimeouts) -> Record {
        let left = (self.last_ns + self.timeout(t)).saturating_sub(now_ns) / 1_000_000;
        Record {
            op,
            key: SessionKey {
                vpc: self.inside.vpc,
                proto: self.inside.proto,
                inside_ip: Ipv4Addr::from(self.inside.inside_ip),
                inside_port: self.inside.inside_port,
                remote_ip: Ipv4Addr::from(self.inside.remote_ip),
                remote_port: self.inside.remote_port,
            },
            nat: self.kind,
            outside_ip: Ipv4Addr::from(self.outside_ip),
            outside_port: self.outside_port,
            state: self.phase as u8,
            expires_in_ms: left.min(u64::from(u32::MAX)) as u32,
        }
    }

    fn timeout(&self, t: &NatTimeouts) -> u64 {
        match (self.inside.proto, self.phase) {
            (6, TcpPhase::Established) => t.tcp_established,
            (6, _) => t.tcp_transitory,
            (17, _) => t.udp,
            _ => t.icmp,
        }
    }
}

/// TCP flags that matter here.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// "No slot to try first": what [`NatTable::prefetch_session`] returns when the index has
/// no candidate, and what the lookups take when the caller has none.
pub const NO_HINT: u32 = u32::MAX;

/// Sync events a table holds at most before they are collected (more overflow: the master
/// then resyncs its backups in bulk).
pub const EVENT_CAPACITY: usize = 4096;

/// A worker's NAT sessions.
#[derive(Debug)]
pub struct NatTable {
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    /// Sessions in use.
    len: usize,
    by_inside: SlotIndex,
    by_outside: SlotIndex,
    /// Hash seed of both indexes.
    seed: [u64; 3],
    /// Endpoint-independent mappings: (vpc, proto, inside ip, inside port) → (port, users).
    eim: FxHashMap<(u32, u8, u32, u16), (u16, u32)>,
    /// Outside (ip, proto, port) held by an endpoint-independent mapping.
    eim_ports: FxHashMap<(u32, u8, u16), u32>,
    /// Sessions per outside (ip, proto, port), whatever the remote.
    used_ports: FxHashMap<(u32, u8, u16), u32>,
    slice: PortSlice,
    cursor: u32,
    timeouts: NatTimeouts,
    events: VecDeque<Record>,
    /// Events that did not fit in the event queue.
    pub events_lost: u64,
    /// Whether sync events are produced (off until something streams them).
    events_on: bool,
    sweep_at: usize,
    /// One past the highest slot ever used: every session is below it (the free list hands
    /// out the lowest slots first), so a pass over the sessions stops here.
    high_water: usize,
}

impl NatTable {
    /// A table of `capacity` sessions for worker `worker` of `workers`.
    pub fn new(capacity: usize, worker: usize, workers: usize, timeouts: NatTimeouts) -> NatTable {
        let mut seed = RandomState::new().hash_one(0x6e61_745f_u64);
        let mut slots = Vec::with_capacity(capacity);
        crate::port::memory::advise_huge_pages(slots.spare_capacity_mut());
        slots.resize(capacity, None);
        let mut t = NatTable {
            slots,
            free: (0..capacity as u32).rev().collect(),
            len: 0,
            by_inside: SlotIndex::with_capacity(capacity),
            by_outside: SlotIndex::with_capacity(capacity),
            seed: [
                splitmix64(&mut seed),
                splitmix64(&mut seed),
                splitmix64(&mut seed),
            ],
            eim: FxHashMap::default(),
            eim_ports: FxHashMap::default(),
            used_ports: FxHashMap::default(),
            slice: ports::slice(worker, workers),
            cursor: 0,
            timeouts,
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            events_lost: 0,
            events_on: true,
            sweep_at: 0,
            high_water: 0,
        };
        t.used_ports.reserve(capacity);
        t.eim.reserve(capacity / 4);
        t.eim_ports.reserve(capacity / 4);
        t
    }

    /// Sessions in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the session array and its two indexes take (the maps of session creation
    /// apart).
    pub fn bytes(&self) -> usize {
        self.slots.len() * size_of::<Option<Session>>()
            + self.by_inside.bytes()
            + self.by_outside.bytes()
    }

    /// The slot of the session filed under inside key `k`.
    #[inline(always)]
    fn slot_inside(&self, k: &InsideKey) -> Option<u32> {
        self.by_inside.find(k.hash(&self.seed), |i| {
            self.slots[i as usize]
                .as_ref()
                .is_some_and(|s| s.inside == *k)
        })
    }

    /// The slot of the session filed under outside key `k`.
    #[inline(always)]
    fn slot_outside(&self, k: &OutsideKey) -> Option<u32> {
        self.by_outside.find(k.hash(&self.seed), |i| {
            self.slots[i as usize]
                .as_ref()
                .is_some_and(|s| s.outside_key() == *k)
        })
    }

    /// Stage one of a frame's lookups: prefetches the index line of inside key `k` and
    /// returns the key's hash for stage two ([`NatTable::prefetch_session`]).
    #[inline(always)]
    pub fn prefetch_inside(&self, k: &InsideKey) -> u64 {
        let h = k.hash(&self.seed);
        self.by_inside.prefetch(h);
        h
    }

    /// [`NatTable::prefetch_inside`] for an outside key.
    #[inline(always)]
    pub fn prefetch_outside(&self, k: &OutsideKey) -> u64 {
        let h = k.hash(&self.seed);
        self.by_outside.prefetch(h);
        h
    }

    /// Stage two (after stage one's index line had time to land): prefetches the session
    /// that the index entry of `hash` (from stage one; `inbound`: an outside key) probably
    /// names, and returns its slot as a hint for the lookup ([`NO_HINT`] if the index has
    /// no entry with that tag). No key is parsed or hashed again.
    #[inline(always)]
    pub fn prefetch_session(&self, inbound: bool, hash: u64) -> u32 {
        let index = if inbound {
            &self.by_outside
        } else {
            &self.by_inside
        };
        match index.prefetch_slot(hash) {
            Some(i) => match self.slots.get(i as usize) {
                Some(slot) => {
                    crate::port::memory::prefetch(slot);
                    i
                }
                None => NO_HINT,
            },
            None => NO_HINT,
        }
    }

    /// The slot of inside key `k`: `hint` (from [`NatTable::prefetch_session`]) if the
    /// session there has that key, which saves hashing the key and reading the index again;
    /// else the index lookup. Keys are unique in the table, so a session holding `k` is
    /// the one the index would find.
    #[inline(always)]
    fn slot_inside_hinted(&self, k: &InsideKey, hint: u32) -> Option<u32> {
        match self.slots.get(hint as usize) {
            Some(Some(s)) if s.inside == *k => Some(hint),
            _ => self.slot_inside(k),
        }
    }

    /// [`NatTable::slot_inside_hinted`] for an outside key.
    #[inline(always)]
    fn slot_outside_hinted(&self, k: &OutsideKey, hint: u32) -> Option<u32> {
        match self.slots.get(hint as usize) {
            Some(Some(s)) if s.outside_key() == *k => Some(hint),
            _ => self.slot_outside(k),
        }
    }

    /// The ports this table allocates from.
    pub fn slice(&self) -> PortSlice {
        self.slice
    }

    /// Makes this the table of worker `worker` of `workers` (its port slice); for a table
    /// built before the worker knew its place, before any session exists.
    pub fn set_worker(&mut self, worker: usize, workers: usize) {
        debug_assert!(self.is_empty(), "re-sliced with sessions");
        self.slice = ports::slice(worker, workers);
        self.cursor = 0;
    }

    /// Stops producing sync events (a gateway that streams them to no backup).
    pub fn without_events(mut self) -> NatTable {
        self.set_events(false);
        self
    }

    /// Turns the production of sync events on or off.
    pub fn set_events(&mut self, on: bool) {
        self.events_on = on;
        self.events = if on {
            VecDeque::with_capacity(EVENT_CAPACITY)
        } else {
            VecDeque::new()
        };
    }

    fn event(&mut self, r: Record) {
        if !self.events_on {
            return;
        }
        if self.events.len() >= EVENT_CAPACITY {
            self.events_lost += 1;
        } else {
            self.events.push_back(r);
        }
    }

    /// Takes the sync events gathered so far.
    pub fn take_events(&mut self) -> impl Iterator<Item = Record> + '_ {
        self.events.drain(..)
    }

    fn alive(&self, s: &Session, now_ns: u64) -> bool {
        now_ns < s.last_ns + s.timeout(&self.timeouts)
    }

    /// The live session of an inside key.
    pub fn get_inside(&self, k: &InsideKey, now_ns: u64) -> Option<&Session> {
        let i = self.slot_inside(k)?;
        self.slots[i as usize]
            .as_ref()
            .filter(|s| self.alive(s, now_ns))
    }

    /// The live session a packet from outside belongs to.
    pub fn get_outside(&self, k: &OutsideKey, now_ns: u64) -> Option<&Session> {
        let i = self.slot_outside(k)?;
        self.slots[i as usize]
            .as_ref()
            .filter(|s| self.alive(s, now_ns))
    }

    /// Finds or creates the session of an outbound packet and returns its outside
    /// address and port.
    pub fn outbound(
        &mut self,
        k: &InsideKey,
        tr: Translation,
        now_ns: u64,
    ) -> Result<(u32, u16), NatError> {
        if let Some(i) = self.slot_inside(k) {
            if let Some(s) = &self.slots[i as usize] {
                if self.alive(s, now_ns) {
                    return Ok((s.outside_ip, s.outside_port));
                }
            }
            self.remove(i, now_ns);
        }
        let (ip, port, kind) = match tr {
            Translation::FloatingIp { ip } => {
                let ok = OutsideKey {
                    proto: k.proto,
                    outside_ip: ip,
                    outside_port: k.inside_port,
                    remote_ip: k.remote_ip,
                    remote_port: k.remote_port,
                };
                if self.slot_outside(&ok).is_some() {
                    return Err(NatError::Conflict);
                }
                (ip, k.inside_port, NatKind::FloatingIp)
            }
            Translation::Snat {
                ip,
                endpoint_dependent: false,
            } => {
                let port = match self.eim.get(&(k.vpc, k.proto, k.inside_ip, k.inside_port)) {
                    Some(&(p, _)) => p,
                    None => self.free_port(k, ip, true)?,
                };
                (ip, port, NatKind::SnatEndpointIndependent)
            }
            Translation::Snat {
                ip,
                endpoint_dependent: true,
            } => (
                ip,
                self.free_port(k, ip, false)?,
                NatKind::SnatEndpointDependent,
            ),
        };
        self.insert(
            Session {
                inside: *k,
                outside_ip: ip,
                outside_port: port,
                kind,
                phase: if k.proto == 6 {
                    TcpPhase::Opening
                } else {
                    TcpPhase::None
                },
                last_ns: now_ns,
                replied: false,
                synced_ns: now_ns,
            },
            now_ns,
        )?;
        Ok((ip, port))
    }

    /// A free outside port on `ip` for `k` from this worker's slice: not held by an
    /// endpoint-independent mapping and (for an independent one) by nobody at all on that
    /// address, else not used towards the same remote.
    fn free_port(&mut self, k: &InsideKey, ip: u32, independent: bool) -> Result<u16, NatError> {
        let len = u32::from(self.slice.len);
        let start = self.cursor;
        for step in 0..len.min(4096) {
            let port = self.slice.nth(start.wrapping_add(step));
            if self.eim_ports.contains_key(&(ip, k.proto, port)) {
                continue;
            }
            let taken = if independent {
                // An independent mapping accepts any remote: the port must be unused.
                self.used_ports.contains_key(&(ip, k.proto, port))
            } else {
                self.slot_outside(&OutsideKey {
                    proto: k.proto,
                    outside_ip: ip,
                    outside_port: port,
                    remote_ip: k.remote_ip,
                    remote_port: k.remote_port,
                })
                .is_some()
            };
            if !taken {
                self.cursor = start.wrapping_add(step + 1);
                return Ok(port);
            }
        }
        Err(NatError::NoPort)
    }

    /// Files a new session. Its inside key must not be in the table; an outside key in use
    /// by another session is refused ([`NatError::Conflict`]).
    fn insert(&mut self, s: Session, now_ns: u64) -> Result<u32, NatError> {
        let ok = s.outside_key();
        if self.slot_outside(&ok).is_some() {
            return Err(NatError::Conflict);
        }
        let Some(i) = self.free.pop() else {
            return Err(NatError::Full);
        };
        self.high_water = self.high_water.max(i as usize + 1);
        self.by_inside.insert(s.inside.hash(&self.seed), i);
        self.by_outside.insert(ok.hash(&self.seed), i);
        self.len += 1;
        *self
            .used_ports
            .entry((s.outside_ip, s.inside.proto, s.outside_port))
            .or_insert(0) += 1;
        if s.kind == NatKind::SnatEndpointIndependent {
            let e = self
                .eim
                .entry((
                    s.inside.vpc,
                    s.inside.proto,
                    s.inside.inside_ip,
                    s.inside.inside_port,
                ))
                .or_insert((s.outside_port, 0));
            e.1 += 1;
            *self
                .eim_ports
                .entry((s.outside_ip, s.inside.proto, s.outside_port))
                .or_insert(0) += 1;
        }
        self.slots[i as usize] = Some(s);
        self.event(s.record(Op::Add, now_ns, &self.timeouts));
        Ok(i)
    }

    fn remove(&mut self, i: u32, now_ns: u64) {
        let Some(s) = self.slots[i as usize].take() else {
            return;
        };
        self.by_inside.remove(s.inside.hash(&self.seed), i);
        self.by_outside.remove(s.outside_key().hash(&self.seed), i);
        self.len -= 1;
        let uk = (s.outside_ip, s.inside.proto, s.outside_port);
        if let Some(n) = self.used_ports.get_mut(&uk) {
            *n -= 1;
            if *n == 0 {
                self.used_ports.remove(&uk);
            }
        }
        if s.kind == NatKind::SnatEndpointIndependent {
            let k = (
                s.inside.vpc,
                s.inside.proto,
                s.inside.inside_ip,
                s.inside.inside_port,
            );
            if let Some(e) = self.eim.get_mut(&k) {
                e.1 -= 1;
                if e.1 == 0 {
                    self.eim.remove(&k);
                }
            }
            let pk = (s.outside_ip, s.inside.proto, s.outside_port);
            if let Some(n) = self.eim_ports.get_mut(&pk) {
                *n -= 1;
                if *n == 0 {
                    self.eim_ports.remove(&pk);
                }
            }
        }
        self.free.push(i);
        self.event(s.record(Op::Delete, now_ns, &self.timeouts));
    }

    /// Records a packet of the session at inside key `k` (outbound) or that a reply came
    /// (`reply`), with its TCP flags; the timeout restarts and the TCP phase moves. Returns
    /// false if there is no such session.
    pub fn touch(&mut self, k: &InsideKey, reply: bool, tcp_flags: u8, now_ns: u64) -> bool {
        let Some(i) = self.slot_inside(k) else {
            return false;
        };
        self.touch_at(i, reply, tcp_flags, now_ns)
    }

    /// The live session an outside key belongs to: its slot and inside key (for
    /// [`NatTable::touch_at`], without a second lookup).
    pub fn find_outside(&self, k: &OutsideKey, now_ns: u64) -> Option<(u32, InsideKey)> {
        self.find_outside_hinted(k, NO_HINT, now_ns)
    }

    /// [`NatTable::find_outside`] trying the slot `hint` first (see
    /// [`NatTable::prefetch_session`]).
    #[inline(always)]
    pub fn find_outside_hinted(
        &self,
        k: &OutsideKey,
        hint: u32,
        now_ns: u64,
    ) -> Option<(u32, InsideKey)> {
        let i = self.slot_outside_hinted(k, hint)?;
        self.slots[i as usize]
            .as_ref()
            .filter(|s| self.alive(s, now_ns))
            .map(|s| (i, s.inside))
    }

    /// [`NatTable::outbound`] and [`NatTable::touch`] in one: a packet of an existing
    /// session costs one lookup.
    ///
    /// Inlined into the forwarding nodes so the key stays in registers: built in the caller
    /// with narrow stores and read back through a reference as wider words, it cost a
    /// store-forwarding stall per packet. A new session takes the out-of-line path.
    #[inline(always)]
    pub fn outbound_touch(
        &mut self,
        k: &InsideKey,
        tr: Translation,
        tcp_flags: u8,
        now_ns: u64,
    ) -> Result<(u32, u16), NatError> {
        self.outbound_touch_hinted(k, NO_HINT, tr, tcp_flags, now_ns)
    }

    /// [`NatTable::outbound_touch`] trying the slot `hint` first (see
    /// [`NatTable::prefetch_session`]).
    #[inline(always)]
    pub fn outbound_touch_hinted(
        &mut self,
        k: &InsideKey,
        hint: u32,
        tr: Translation,
        tcp_flags: u8,
        now_ns: u64,
    ) -> Result<(u32, u16), NatError> {
        if let Some(out) = self.touch_inside_hinted(k, hint, tcp_flags, now_ns) {
            return Ok(out);
        }
        self.outbound_new(*k, tr, tcp_flags, now_ns)
    }

    /// The outside address and port of the live session of inside key `k` (tried at slot
    /// `hint` first, see [`NatTable::prefetch_session`]), after [`NatTable::touch_at`] of
    /// an outbound packet with `tcp_flags`; `None` (and nothing touched) without one.
    #[inline(always)]
    pub fn touch_inside_hinted(
        &mut self,
        k: &InsideKey,
        hint: u32,
        tcp_flags: u8,
        now_ns: u64,
    ) -> Option<(u32, u16)> {
        let i = self.slot_inside_hinted(k, hint)?;
        let s = self.slots[i as usize].as_ref()?;
        if !self.alive(s, now_ns) {
            return None;
        }
        let out = (s.outside_ip, s.outside_port);
        self.touch_at(i, false, tcp_flags, now_ns);
        Some(out)
    }

    /// The slow half of [`NatTable::outbound_touch`]: no live session yet, so
    /// [`NatTable::outbound`] opens one (translated as `tr`) and [`NatTable::touch`] records
    /// the packet.
    #[cold]
    #[inline(never)]
    pub fn outbound_new(
        &mut self,
        k: InsideKey,
        tr: Translation,
        tcp_flags: u8,
        now_ns: u64,
    ) -> Result<(u32, u16), NatError> {
        let out = self.outbound(&k, tr, now_ns)?;
        self.touch(&k, false, tcp_flags, now_ns);
        Ok(out)
    }

    /// [`NatTable::touch`] of the session in slot `i`.
    #[inline(always)]
    pub fn touch_at(&mut self, i: u32, reply: bool, tcp_flags: u8, now_ns: u64) -> bool {
        let t = self.timeouts;
        let Some(s) = self.slots[i as usize].as_mut() else {
            return false;
        };
        s.last_ns = now_ns;
        let before = s.phase;
        if reply {
            s.replied = true;
        }
        if s.inside.proto == 6 {
            s.phase = if tcp_flags & (FIN | RST) != 0 {
                TcpPhase::Closing
            } else if s.replied && tcp_flags & SYN == 0 && s.phase == TcpPhase::Opening {
                TcpPhase::Established
            } else {
                s.phase
            };
        }
        // A phase change is news; so is a session kept alive past half its timeout since
        // the backup last heard of it (a refresh, as VPP's NAT HA sends).
        if s.phase != before || now_ns.saturating_sub(s.synced_ns) > s.timeout(&t) / 2 {
            self.note_update(i, now_ns);
        }
        true
    }

    /// The sync event of [`NatTable::touch_at`]: rare (a phase change or a refresh).
    #[cold]
    #[inline(never)]
    fn note_update(&mut self, i: u32, now_ns: u64) {
        let t = self.timeouts;
        if let Some(s) = self.slots[i as usize].as_mut() {
            s.synced_ns = now_ns;
            let r = s.record(Op::Update, now_ns, &t);
            self.event(r);
        }
    }

    /// Removes the session with sync key `k` (a backup told that the master's ended);
    /// returns whether there was one.
    pub fn remove_key(&mut self, k: &SessionKey, now_ns: u64) -> bool {
        let inside = InsideKey {
            vpc: k.vpc,
            proto: k.proto,
            inside_ip: u32::from(k.inside_ip),
            inside_port: k.inside_port,
            remote_ip: u32::from(k.remote_ip),
            remote_port: k.remote_port,
        };
        match self.slot_inside(&inside) {
            Some(i) => {
                self.remove(i, now_ns);
                true
            }
            None => false,
        }
    }

    /// Removes up to `budget` expired sessions, going round the table.
    pub fn sweep(&mut self, now_ns: u64, budget: usize) -> usize {
        let n = self.slots.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            let i = self.sweep_at;
            self.sweep_at = (self.sweep_at + 1) % n;
            let expired = self.slots[i]
                .as_ref()
                .is_some_and(|s| !self.alive(s, now_ns));
            if expired {
                self.remove(i as u32, now_ns);
                removed += 1;
            }
        }
        removed
    }

    /// Slots of the session array.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// One past the highest slot any session has used (the range [`NatTable::revoke`]
    /// goes over): the free list hands out the lowest slots first, so it is the peak number
    /// of sessions, not the capacity.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Removes the sessions in slots `range` (clamped to the table) that `cfg` no longer
    /// grants their outside address ([`super::NatConfig::grants`]): a floating IP or source NAT
    /// rule removed or changed. Each removal is a sync delete event, so backups drop the
    /// session too. Returns how many were removed. Workers call it over the whole table,
    /// a slice per poll, after a NAT configuration change.
    pub fn revoke(
        &mut self,
        cfg: &super::NatConfig,
        range: std::ops::Range<usize>,
        now_ns: u64,
    ) -> usize {
        let end = range.end.min(self.slots.len());
        let mut removed = 0;
        for i in range.start.min(end)..end {
            let stale = self.slots[i].as_ref().is_some_and(|s| {
                !cfg.grants(s.inside.vpc, s.inside.inside_ip, s.kind, s.outside_ip)
            });
            if stale {
                self.remove(i as u32, now_ns);
                removed += 1;
            }
        }
        removed
    }

    /// Installs a session learnt from the master (a backup taking over): as it was, with
    /// its remaining timeout. Source NAT sessions outside this worker's slice are refused
    /// ([`NatError::OtherSlice`]: replies to that port go to another worker); the caller
    /// gives each worker the sessions it owns ([`super::owner::of_record`]).
    pub fn install(&mut self, r: &Record, now_ns: u64) -> Result<(), NatError> {
        if r.nat != NatKind::FloatingIp && !self.slice.contains(r.outside_port) {
            return Err(NatError::OtherSlice);
        }
        let inside = InsideKey {
            vpc: r.key.vpc,
            proto: r.key.proto,
            inside_ip: u32::from(r.key.inside_ip),
            inside_port: r.key.inside_port,
            remote_ip: u32::from(r.key.remote_ip),
            remote_port: r.key.remote_port,
        };
        if let Some(i) = self.slot_inside(&inside) {
            self.remove(i, now_ns);
        }
        // The master is right: a stale session of ours holding the same outside key goes.
        let ok = OutsideKey {
            proto: r.key.proto,
            outside_ip: u32::from(r.outside_ip),
            outside_port: r.outside_port,
            remote_ip: u32::from(r.key.remote_ip),
            remote_port: r.key.remote_port,
        };
        if let Some(i) = self.slot_outside(&ok) {
            self.remove(i, now_ns);
        }
        let phase = match r.state {
            1 => TcpPhase::Opening,
            2 => TcpPhase::Established,
            3 => TcpPhase::Closing,
            _ => TcpPhase::None,
        };
        let mut s = Session {
            inside,
            outside_ip: u32::from(r.outside_ip),
            outside_port: r.outside_port,
            kind: r.nat,
            phase,
            last_ns: now_ns,
            replied: phase == TcpPhase::Established,
            synced_ns: now_ns,
        };
        // Keep the master's remaining time.
        let left = u64::from(r.expires_in_ms) * 1_000_000;
        s.last_ns = (now_ns + left).saturating_sub(s.timeout(&self.timeouts));
        self.insert(s, now_ns).map(|_| ())
    }

    /// Every live session as an add record, in slot order, without collecting them (a dump
    /// for the admin API). Only the slots below the high-water mark are read.
    pub fn records(&self, now_ns: u64) -> impl Iterator<Item = Record> + '_ {
        self.slots[..self.high_water]
            .iter()
            .flatten()
            .filter(move |s| self.alive(s, now_ns))
            .map(move |s| s.record(Op::Add, now_ns, &self.timeouts))
    }

    /// Every live session as an add record (a bulk resync).
    pub fn snapshot(&self, now_ns: u64) -> Vec<Record> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| self.alive(s, now_ns))
            .map(|s| s.record(Op::Add, now_ns, &self.timeouts))
            .collect()
    }
}
