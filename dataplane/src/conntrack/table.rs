//! The per-worker connection table: open addressing with linear probing over one
//! cache-line-sized slot per entry, backward-shift deletion (no tombstones), incremental expiry.
//!
//! Both directions of a connection share one key: the two endpoints `(addr, port)` are
//! ordered, and the entry keeps one bit saying which of them originated the connection, so one
//! probe sequence finds it from either side. The hash is a seeded folded multiply of the
//! 16-byte key: it spreads well and is fast but is not a keyed PRF — with a random seed (what
//! [`ConnTable::new`] uses) an outsider cannot aim flows at one cluster, but the seed is not
//! protected against recovery by timing. The table never holds more than 7/8 of its slots, so
//! a probe always ends at an empty slot.
//!
//! Nothing allocates after [`ConnTable::new`]; every operation is O(1) expected, except
//! [`ConnTable::sweep`] (O(budget)) and [`ConnTable::iter`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::{
    tcp, ConnState, ConnView, Dir, Flow, Full, Hit, Timeouts, Update, PROTO_ICMP, PROTO_TCP,
    PROTO_UDP,
};

/// At most `LOAD_NUM / LOAD_DEN` of the slots hold entries.
const LOAD_NUM: usize = 7;
/// See [`LOAD_NUM`].
const LOAD_DEN: usize = 8;
/// Set in every live slot's `k1`, so an empty slot (`k1 == 0`) never matches a key.
const LIVE: u64 = 1 << 56;
/// `orig_is_a` bit of [`Slot::bits`]: endpoint `a` (the lower one) originated the connection.
const ORIG_IS_A: u8 = 1;
/// Odd constant of the final mixing multiply (from wyhash).
pub(crate) const MUL: u64 = 0xa076_1d64_78bd_642f;

/// A per-worker connection table; see the module documentation.
pub struct ConnTable {
    /// `mask + 1` slots, a power of two.
    slots: Box<[Slot]>,
    mask: usize,
    len: usize,
    /// `slots.len() * 7 / 8`.
    max_len: usize,
    /// Next slot [`ConnTable::sweep`] looks at.
    cursor: usize,
    seed: [u64; 3],
    /// Timeout per [`ConnState`], indexed by `state as usize`.
    timeouts: [u64; ConnState::ALL.len()],
}

/// One connection (or an empty slot when `k1 == 0`): exactly one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Slot {
    /// `a_addr << 32 | b_addr`, endpoint `a` being the lower `(addr, port)`.
    k0: u64,
    /// `LIVE | zone << 40 | proto << 32 | a_port << 16 | b_port`; 0 when the slot is empty.
    k1: u64,
    expires_ns: u64,
    packets: [u64; 2],
    bytes: [u64; 2],
    tag: u32,
    state: ConnState,
    /// [`ORIG_IS_A`].
    bits: u8,
    /// TCP: which directions sent FIN ([`tcp::FIN_ORIG`], [`tcp::FIN_REPLY`]).
    fins: u8,
}

/// A flow's direction-independent key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    k0: u64,
    k1: u64,
}

/// A flow's key, home slot and direction, as [`ConnTable::probe`] computed them: a node
/// that prefetches a frame's connections keeps the probes and looks them up without
/// building and hashing the keys again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    key: Key,
    home: u32,
    src_is_a: bool,
}

impl Probe {
    /// The zone of the flow the probe was made from.
    #[inline]
    pub fn zone(&self) -> u16 {
        (self.key.k1 >> 40) as u16
    }
}

impl ConnTable {
    /// Memory per usable entry: the slot size divided by the maximum load (7/8).
    pub const BYTES_PER_ENTRY: usize = size_of::<Slot>() * LOAD_DEN / LOAD_NUM;

    /// A table for at least `capacity` connections, hashing with a random seed. See
    /// [`ConnTable::with_seed`].
    pub fn new(capacity: usize, timeouts: Timeouts) -> ConnTable {
        ConnTable::with_seed(
            capacity,
            timeouts,
            RandomState::new().hash_one(0x636f_6e6e_u64),
        )
    }

    /// A table for at least `capacity` connections: the slot count is `capacity * 8 / 7`
    /// rounded up to a power of two (at least 8), and [`ConnTable::capacity`] is 7/8 of it.
    /// Allocates and writes all slots once (so no page faults later); `seed` picks the hash
    /// function (tests pass a fixed one).
    ///
    /// # Panics
    /// If the slot count would exceed 2³¹ (slots are `u32`).
    pub fn with_seed(capacity: usize, timeouts: Timeouts, seed: u64) -> ConnTable {
        let wanted = capacity
            .checked_mul(LOAD_DEN)
            .map(|n| n.div_ceil(LOAD_NUM).max(8))
            .and_then(usize::checked_next_power_of_two)
            .filter(|&n| n <= 1 << 31)
            .expect("conntrack capacity too large");
        let mut s = seed;
        // Transparent huge pages for the table (if the kernel has them): lookups of random
        // flows then miss the caches but not also the TLB.
        let mut slots = Vec::with_capacity(wanted);
        crate::port::memory::advise_huge_pages(slots.spare_capacity_mut());
        slots.resize(wanted, Slot::EMPTY);
        ConnTable {
            slots: slots.into_boxed_slice(),
            mask: wanted - 1,
            len: 0,
            max_len: wanted / LOAD_DEN * LOAD_NUM,
            cursor: 0,
            seed: [splitmix64(&mut s), splitmix64(&mut s), splitmix64(&mut s)],
            timeouts: ConnState::ALL.map(|state| timeouts.of(state)),
        }
    }

    /// Number of entries, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many entries the table holds at most (7/8 of the slots, at least what was asked).
    pub fn capacity(&self) -> usize {
        self.max_len
    }

    /// Number of slots (a power of two; the sweep's unit).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Finds the connection of `flow`, from either direction. An entry expired at `now_ns` is
    /// removed and reported absent. The returned slot is valid until the next `lookup`,
    /// `insert`, `remove` or `sweep`.
    #[inline]
    pub fn lookup(&mut self, flow: &Flow, now_ns: u64) -> Option<Hit> {
        let probe = self.probe(flow);
        self.lookup_probe(&probe, now_ns)
    }

    /// The key and home slot of `flow`, computed once for a prefetch
    /// ([`ConnTable::prefetch_probe`]) and the lookup after it ([`ConnTable::lookup_probe`]).
    #[inline]
    pub fn probe(&self, flow: &Flow) -> Probe {
        let (key, src_is_a) = Key::of(flow);
        Probe {
            key,
            home: self.home(key) as u32,
            src_is_a,
        }
    }

    /// Prefetches the home slot of `probe` so that a [`ConnTable::lookup_probe`] of it soon
    /// after finds it in the cache. Called for a whole frame before the frame is processed,
    /// the misses overlap (memory-level parallelism) instead of stalling one after another.
    #[inline]
    pub fn prefetch_probe(&self, probe: &Probe) {
        crate::port::memory::prefetch(&self.slots[probe.home as usize & self.mask]);
    }

    /// [`ConnTable::lookup`] of the flow `probe` was made from (by this table: a probe
    /// of another table finds nothing or the wrong entry, though it never panics).
    #[inline]
    pub fn lookup_probe(&mut self, probe: &Probe, now_ns: u64) -> Option<Hit> {
        let (key, src_is_a) = (probe.key, probe.src_is_a);
        let mut i = probe.home as usize & self.mask;
        loop {
            let slot = &self.slots[i];
            if slot.k1 == 0 {
                return None;
            }
            if slot.k0 == key.k0 && slot.k1 == key.k1 {
                if slot.expires_ns <= now_ns {
                    self.remove_at(i);
                    return None;
                }
                let dir = if src_is_a == (slot.bits & ORIG_IS_A != 0) {
                    Dir::Original
                } else {
                    Dir::Reply
                };
                return Some(Hit {
                    slot: i as u32,
                    dir,
                });
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Applies a packet of the connection at `hit`: advances the state (TCP flags, UDP reply),
    /// sets the expiry to `now_ns` + the new state's timeout and counts the packet and its
    /// `len` bytes in its direction. On [`Update::Invalid`] nothing changes.
    pub fn update(&mut self, hit: Hit, tcp_flags: u8, len: u16, now_ns: u64) -> Update {
        let slot = &mut self.slots[hit.slot as usize];
        if slot.k1 == 0 {
            return Update::Invalid;
        }
        let (state, fins) = match slot.proto() {
            PROTO_TCP => match tcp::step(slot.state, slot.fins, hit.dir, tcp_flags) {
                Some(next) => next,
                None => return Update::Invalid,
            },
            PROTO_UDP if hit.dir == Dir::Reply => (ConnState::UdpReplied, 0),
            _ => (slot.state, slot.fins),
        };
        slot.state = state;
        slot.fins = fins;
        slot.expires_ns = now_ns.saturating_add(self.timeouts[state as usize]);
        let d = hit.dir.index();
        slot.packets[d] = slot.packets[d].wrapping_add(1);
        slot.bytes[d] = slot.bytes[d].wrapping_add(u64::from(len));
        Update::Ok
    }

    /// Creates the connection of `flow`, whose first packet (original direction) has
    /// `tcp_flags` (0 unless TCP) and `len` bytes. TCP: SYN → syn_sent, RST or an invalid flag
    /// combination → closed, anything else → mid-stream pickup (established; FIN+ACK →
    /// fin_wait); UDP → udp_unreplied; ICMP → icmp; others → other. An existing entry of the
    /// same connection (either direction) is replaced. The slot is valid as for `lookup`.
    pub fn insert(
        &mut self,
        flow: &Flow,
        tcp_flags: u8,
        len: u16,
        now_ns: u64,
        tag: u32,
    ) -> Result<Hit, Full> {
        let (key, src_is_a) = Key::of(flow);
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            if slot.k1 == 0 {
                if self.len >= self.max_len {
                    return Err(Full);
                }
                self.len += 1;
                break;
            }
            if slot.k0 == key.k0 && slot.k1 == key.k1 {
                break;
            }
            i = (i + 1) & self.mask;
        }
        let (state, fins) = match flow.proto {
            PROTO_TCP => tcp::initial(tcp_flags),
            PROTO_UDP => (ConnState::UdpUnreplied, 0),
            PROTO_ICMP => (ConnState::Icmp, 0),
            _ => (ConnState::Other, 0),
        };
        self.slots[i] = Slot {
            k0: key.k0,
            k1: key.k1,
            expires_ns: now_ns.saturating_add(self.timeouts[state as usize]),
            packets: [1, 0],
            bytes: [u64::from(len), 0],
            tag,
            state,
            bits: if src_is_a { ORIG_IS_A } else { 0 },
            fins,
        };
        Ok(Hit {
            slot: i as u32,
            dir: Dir::Original,
        })
    }

    /// The caller's opaque value of the entry in `slot`.
    ///
    /// # Panics
    /// If `slot` is out of range.
    pub fn tag(&self, slot: u32) -> u32 {
        self.slots[slot as usize].tag
    }

    /// Replaces the caller's opaque value of the entry in `slot` (e.g. after re-evaluating
    /// policy for a new epoch).
    ///
    /// # Panics
    /// If `slot` is out of range.
    pub fn set_tag(&mut self, slot: u32, tag: u32) {
        self.slots[slot as usize].tag = tag;
    }

    /// Removes the entry in `slot` (nothing if the slot is empty). Moves other entries.
    ///
    /// # Panics
    /// If `slot` is out of range.
    pub fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if self.slots[i].k1 != 0 {
            self.remove_at(i);
        }
    }

    /// Incremental expiry: looks at `budget` slots from where the last sweep stopped, removes
    /// the entries expired at `now_ns`, and returns how many it removed. Calling it with a
    /// budget of `b` every loop covers the whole table every `slots / b` loops.
    pub fn sweep(&mut self, now_ns: u64, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            let i = self.cursor;
            let slot = &self.slots[i];
            if slot.k1 != 0 && slot.expires_ns <= now_ns {
                // The backward shift may move a later entry into `i`: look at `i` again.
                self.remove_at(i);
                removed += 1;
            } else {
                self.cursor = (i + 1) & self.mask;
            }
        }
        removed
    }

    /// The entries live at `now_ns`, in slot order, for dumps.
    pub fn iter(&self, now_ns: u64) -> impl Iterator<Item = ConnView> + '_ {
        self.slots
            .iter()
            .filter(move |slot| slot.k1 != 0 && slot.expires_ns > now_ns)
            .map(move |slot| slot.view(now_ns))
    }

    /// The first slot of `key`'s probe sequence.
    fn home(&self, key: Key) -> usize {
        let h = folded_mul(key.k0 ^ self.seed[0], key.k1 ^ self.seed[1]);
        folded_mul(h ^ self.seed[2], MUL) as usize & self.mask
    }

    /// Empties the occupied slot `i` and moves later entries of the cluster back into the hole
    /// when that keeps them reachable from their home slot (backward-shift deletion).
    fn remove_at(&mut self, i: usize) {
        let mask = self.mask;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let slot = self.slots[j];
            if slot.k1 == 0 {
                break;
            }
            let home = self.home(Key {
                k0: slot.k0,
                k1: slot.k1,
            });
            // The entry may fill the hole if the hole lies on its probe path, i.e. in the
            // cyclic range [home, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = Slot::EMPTY;
        self.len -= 1;
    }
}

impl Slot {
    const EMPTY: Slot = Slot {
        k0: 0,
        k1: 0,
        expires_ns: 0,
        packets: [0; 2],
        bytes: [0; 2],
        tag: 0,
        state: ConnState::Other,
        bits: 0,
        fins: 0,
    };

    fn proto(&self) -> u8 {
        (self.k1 >> 32) as u8
    }

    /// The entry as a dump shows it.
    fn view(&self, now_ns: u64) -> ConnView {
        let a = ((self.k0 >> 32) as u32, (self.k1 >> 16) as u16);
        let b = (self.k0 as u32, self.k1 as u16);
        let (src, dst) = if self.bits & ORIG_IS_A != 0 {
            (a, b)
        } else {
            (b, a)
        };
        ConnView {
            flow: Flow {
                zone: (self.k1 >> 40) as u16,
                proto: self.proto(),
                src: src.0,
                dst: dst.0,
                sport: src.1,
                dport: dst.1,
            },
            state: self.state,
            expires_in_ns: self.expires_ns.saturating_sub(now_ns),
            packets: self.packets,
            bytes: self.bytes,
            tag: self.tag,
        }
    }
}

impl Key {
    /// The key of `flow` and whether its source is endpoint `a` (the lower `(addr, port)`).
    fn of(flow: &Flow) -> (Key, bool) {
        let s = (u64::from(flow.src) << 16) | u64::from(flow.sport);
        let d = (u64::from(flow.dst) << 16) | u64::from(flow.dport);
        let src_is_a = s <= d;
        let (a, b) = if src_is_a { (s, d) } else { (d, s) };
        let key = Key {
            k0: (a >> 16) << 32 | (b >> 16),
            k1: LIVE
                | u64::from(flow.zone) << 40
                | u64::from(flow.proto) << 32
                | (a & 0xffff) << 16
                | (b & 0xffff),
        };
        (key, src_is_a)
    }
}

/// The 128-bit product of `a` and `b`, folded to 64 bits.
pub(crate) fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Splitmix64: derives independent seed words from one.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::tcp::{ACK, FIN, RST, SYN};
    use super::*;

    const S: u64 = 1_000_000_000;

    fn table(capacity: usize) -> ConnTable {
        ConnTable::with_seed(capacity, Timeouts::default(), 42)
    }

    fn tcp(src: u32, sport: u16, dst: u32, dport: u16) -> Flow {
        Flow {
            zone: 1,
            proto: PROTO_TCP,
            src,
            dst,
            sport,
            dport,
        }
    }

    fn udp(src: u32, sport: u16, dst: u32, dport: u16) -> Flow {
        Flow {
            proto: PROTO_UDP,
            ..tcp(src, sport, dst, dport)
        }
    }

    /// The state of `flow`'s connection, if live.
    fn state(t: &mut ConnTable, flow: &Flow, now: u64) -> Option<ConnState> {
        t.lookup(flow, now)?;
        t.iter(now)
            .find(|v| v.flow == *flow || v.flow == flow.reversed())
            .map(|v| v.state)
    }

    /// Looks `flow` up and applies a packet, asserting the direction.
    fn packet(t: &mut ConnTable, flow: &Flow, dir: Dir, flags: u8, now: u64) -> Update {
        let hit = t.lookup(flow, now).expect("connection present");
        assert_eq!(hit.dir, dir);
        t.update(hit, flags, 100, now)
    }

    /// Xorshift64*: deterministic test randomness.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn entry_fits_a_cache_line() {
        assert_eq!(size_of::<Slot>(), 64);
        assert_eq!(ConnTable::BYTES_PER_ENTRY, 73);
        const { assert!(ConnTable::BYTES_PER_ENTRY <= 128) };
    }

    #[test]
    fn sizing() {
        let t = table(1_000_000);
        assert_eq!(t.slots.len(), 1 << 21);
        assert_eq!(t.capacity(), (1 << 21) / 8 * 7);
        let t = table(7);
        assert_eq!((t.slots.len(), t.capacity()), (8, 7));
        let t = table(8);
        assert_eq!((t.slots.len(), t.capacity()), (16, 14));
        assert_eq!(table(0).capacity(), 7);
        assert!(t.is_empty());
    }

    #[test]
    fn both_directions_are_found() {
        let mut t = table(100);
        let f = tcp(0x0a00_0002, 40000, 0x0a00_0001, 22);
        let hit = t.insert(&f, SYN, 60, 0, 7).unwrap();
        assert_eq!(hit.dir, Dir::Original);
        assert_eq!(t.len(), 1);
        let o = t.lookup(&f, 1).unwrap();
        let r = t.lookup(&f.reversed(), 1).unwrap();
        assert_eq!((o.slot, o.dir), (hit.slot, Dir::Original));
        assert_eq!((r.slot, r.dir), (hit.slot, Dir::Reply));
        assert_eq!(t.tag(r.slot), 7);
        t.set_tag(r.slot, 9);
        assert_eq!(t.tag(o.slot), 9);
        // Other flows between the same hosts are different connections.
        assert_eq!(t.lookup(&tcp(0x0a00_0002, 40001, 0x0a00_0001, 22), 1), None);
        assert_eq!(t.lookup(&udp(0x0a00_0002, 40000, 0x0a00_0001, 22), 1), None);
    }

    #[test]
    fn probes_find_what_lookup_finds() {
        let mut t = table(1000);
        let mut rng = Rng(7);
        let flows: Vec<Flow> = (0..600)
            .map(|i| {
                let mut f = udp(rng.next() as u32, i as u16, rng.next() as u32, 53);
                f.zone = (i % 3) as u16;
                f
            })
            .collect();
        for f in &flows[..400] {
            t.insert(f, 0, 60, 0, 0).unwrap();
        }
        // Probes taken first (as a node's prefetch pass does), the table changed after.
        let probes: Vec<Probe> = flows.iter().map(|f| t.probe(f)).collect();
        for f in &flows[..50] {
            let hit = t.lookup(f, 1).unwrap();
            t.remove(hit.slot);
        }
        for f in &flows[400..450] {
            t.insert(f, 0, 60, 0, 0).unwrap();
        }
        for (f, p) in flows.iter().zip(&probes) {
            assert_eq!(p.zone(), f.zone);
            assert_eq!(t.lookup_probe(p, 1), t.lookup(f, 1), "{f:?}");
            let r = t.probe(&f.reversed());
            assert_eq!(t.lookup_probe(&r, 1), t.lookup(&f.reversed(), 1));
        }
        assert_eq!(t.len(), 400);
        // A probe of a bigger table never panics here (it finds nothing or another slot).
        let big = table(100_000);
        for f in &flows {
            let _ = t.lookup_probe(&big.probe(f), 1);
        }
    }

    #[test]
    fn tcp_handshake_data_and_fin_close() {
        let mut t = table(100);
        let f = tcp(1, 1000, 2, 80);
        t.insert(&f, SYN, 60, 0, 0).unwrap();
        assert_eq!(state(&mut t, &f, 0), Some(ConnState::TcpSynSent));
        let r = f.reversed();
        assert_eq!(packet(&mut t, &r, Dir::Reply, SYN | ACK, 1), Update::Ok);
        assert_eq!(state(&mut t, &f, 1), Some(ConnState::TcpSynRecv));
        assert_eq!(packet(&mut t, &f, Dir::Original, ACK, 2), Update::Ok);
        assert_eq!(state(&mut t, &f, 2), Some(ConnState::TcpEstablished));
        assert_eq!(packet(&mut t, &r, Dir::Reply, ACK, 3), Update::Ok);
        assert_eq!(packet(&mut t, &f, Dir::Original, FIN | ACK, 4), Update::Ok);
        assert_eq!(state(&mut t, &f, 4), Some(ConnState::TcpFinWait));
        assert_eq!(packet(&mut t, &r, Dir::Reply, ACK, 5), Update::Ok);
        assert_eq!(state(&mut t, &f, 5), Some(ConnState::TcpCloseWait));
        assert_eq!(packet(&mut t, &r, Dir::Reply, FIN | ACK, 6), Update::Ok);
        assert_eq!(state(&mut t, &f, 6), Some(ConnState::TcpLastAck));
        assert_eq!(packet(&mut t, &f, Dir::Original, ACK, 7), Update::Ok);
        assert_eq!(state(&mut t, &f, 7), Some(ConnState::TcpTimeWait));

        let view = t.iter(7).next().unwrap();
        assert_eq!(view.flow, f);
        assert_eq!(view.packets, [4, 4]);
        assert_eq!(view.bytes, [60 + 300, 400]);
        assert_eq!(view.expires_in_ns, 120 * S);
        // time_wait lasts 120 s after the last packet.
        assert!(t.lookup(&f, 7 + 120 * S - 1).is_some());
        assert_eq!(t.lookup(&f, 7 + 120 * S), None);
        assert!(t.is_empty());
    }

    #[test]
    fn rst_closes_with_short_timeout() {
        let mut t = table(100);
        let f = tcp(1, 1000, 2, 80);
        t.insert(&f, SYN, 60, 0, 0).unwrap();
        assert_eq!(
            packet(&mut t, &f.reversed(), Dir::Reply, SYN | ACK, 0),
            Update::Ok
        );
        assert_eq!(packet(&mut t, &f, Dir::Original, ACK, 0), Update::Ok);
        assert_eq!(
            packet(&mut t, &f.reversed(), Dir::Reply, RST, S),
            Update::Ok
        );
        assert_eq!(state(&mut t, &f, S), Some(ConnState::TcpClosed));
        assert_eq!(t.iter(S).next().unwrap().expires_in_ns, 10 * S);
        assert_eq!(t.lookup(&f, 11 * S), None);
    }

    #[test]
    fn invalid_packets_change_nothing() {
        let mut t = table(100);
        let f = tcp(1, 1000, 2, 80);
        t.insert(&f, SYN, 60, 0, 0).unwrap();
        let before = t.iter(0).next().unwrap();
        assert_eq!(packet(&mut t, &f, Dir::Original, ACK, S), Update::Invalid);
        assert_eq!(
            packet(&mut t, &f, Dir::Original, SYN | FIN, S),
            Update::Invalid
        );
        assert_eq!(t.iter(0).next().unwrap(), before);
        // A stale hit on an empty slot is invalid too.
        let hit = t.lookup(&f, S).unwrap();
        t.remove(hit.slot);
        assert_eq!(t.update(hit, ACK, 0, S), Update::Invalid);
        t.remove(hit.slot);
        assert!(t.is_empty());
    }

    #[test]
    fn mid_stream_pickup_is_established() {
        let mut t = table(100);
        let f = tcp(5, 443, 6, 50000);
        t.insert(&f, ACK, 1500, 0, 0).unwrap();
        assert_eq!(state(&mut t, &f, 0), Some(ConnState::TcpEstablished));
        assert_eq!(
            packet(&mut t, &f.reversed(), Dir::Reply, ACK, 1),
            Update::Ok
        );
        assert_eq!(t.iter(1).next().unwrap().expires_in_ns, 7200 * S);
    }

    #[test]
    fn udp_unreplied_then_replied_and_expiry() {
        let mut t = table(100);
        let f = udp(1, 5353, 2, 53);
        t.insert(&f, 0, 80, 0, 0).unwrap();
        assert_eq!(state(&mut t, &f, 0), Some(ConnState::UdpUnreplied));
        assert_eq!(packet(&mut t, &f, Dir::Original, 0, 10 * S), Update::Ok);
        assert_eq!(state(&mut t, &f, 10 * S), Some(ConnState::UdpUnreplied));
        // Unreplied expires 30 s after the last packet.
        assert!(t.lookup(&f, 40 * S - 1).is_some());
        assert_eq!(t.lookup(&f.reversed(), 40 * S), None);
        assert_eq!(t.len(), 0);

        t.insert(&f, 0, 80, 0, 0).unwrap();
        assert_eq!(packet(&mut t, &f.reversed(), Dir::Reply, 0, 1), Update::Ok);
        assert_eq!(packet(&mut t, &f, Dir::Original, 0, 2), Update::Ok);
        assert_eq!(state(&mut t, &f, 2), Some(ConnState::UdpReplied));
        assert!(t.lookup(&f, 2 + 180 * S - 1).is_some());
        assert_eq!(t.lookup(&f, 2 + 180 * S), None);
    }

    #[test]
    fn icmp_echo_uses_the_identifier_as_both_ports() {
        let mut t = table(100);
        let echo = |src, dst, id| Flow {
            zone: 0,
            proto: PROTO_ICMP,
            src,
            dst,
            sport: id,
            dport: id,
        };
        t.insert(&echo(1, 2, 77), 0, 84, 0, 0).unwrap();
        let reply = t.lookup(&echo(2, 1, 77), 1).unwrap();
        assert_eq!(reply.dir, Dir::Reply);
        assert_eq!(t.update(reply, 0, 84, 1), Update::Ok);
        assert_eq!(t.lookup(&echo(2, 1, 78), 1), None);
        let view = t.iter(1).next().unwrap();
        assert_eq!((view.state, view.packets), (ConnState::Icmp, [1, 1]));
        assert_eq!(t.lookup(&echo(1, 2, 77), 1 + 30 * S), None);
    }

    #[test]
    fn other_protocols() {
        let mut t = table(100);
        let gre = Flow {
            zone: 0,
            proto: 47,
            src: 1,
            dst: 2,
            sport: 0,
            dport: 0,
        };
        t.insert(&gre, 0, 100, 0, 0).unwrap();
        assert_eq!(t.lookup(&gre.reversed(), 1).unwrap().dir, Dir::Reply);
        let view = t.iter(1).next().unwrap();
        assert_eq!(
            (view.state, view.expires_in_ns),
            (ConnState::Other, 600 * S - 1)
        );
    }

    #[test]
    fn zones_separate_identical_tuples() {
        let mut t = table(100);
        let a = tcp(1, 1000, 2, 80);
        let b = Flow { zone: 2, ..a };
        let ha = t.insert(&a, SYN, 0, 0, 100).unwrap();
        assert_eq!(t.lookup(&b, 0), None);
        assert_eq!(t.lookup(&b.reversed(), 0), None);
        let hb = t.insert(&b, SYN, 0, 0, 200).unwrap();
        assert_ne!(ha.slot, hb.slot);
        let (ha, hb) = (
            t.lookup(&a, 0).unwrap(),
            t.lookup(&b.reversed(), 0).unwrap(),
        );
        assert_eq!((t.tag(ha.slot), t.tag(hb.slot)), (100, 200));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn insert_replaces_the_same_connection() {
        let mut t = table(100);
        let f = tcp(1, 1000, 2, 80);
        t.insert(&f, SYN, 0, 0, 1).unwrap();
        // The reply side starting "the same" connection takes it over as originator.
        let hit = t.insert(&f.reversed(), ACK, 0, 0, 2).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.tag(hit.slot), 2);
        assert_eq!(t.lookup(&f, 0).unwrap().dir, Dir::Reply);
        let view = t.iter(0).next().unwrap();
        assert_eq!(
            (view.flow, view.state),
            (f.reversed(), ConnState::TcpEstablished)
        );
    }

    #[test]
    fn full_at_capacity() {
        let mut t = table(100);
        let cap = t.capacity();
        assert!(cap >= 100);
        for i in 0..cap as u32 {
            t.insert(&udp(i, 1, 0xffff_0000, 2), 0, 0, 0, i).unwrap();
        }
        assert_eq!(t.len(), cap);
        let extra = udp(cap as u32, 1, 0xffff_0000, 2);
        assert_eq!(t.insert(&extra, 0, 0, 0, 0), Err(Full));
        // Replacing an existing connection still works when full.
        assert!(t.insert(&udp(3, 1, 0xffff_0000, 2), 0, 0, 0, 0).is_ok());
        let hit = t.lookup(&udp(5, 1, 0xffff_0000, 2), 0).unwrap();
        t.remove(hit.slot);
        assert!(t.insert(&extra, 0, 0, 0, 0).is_ok());
        assert_eq!(t.insert(&udp(5, 1, 0xffff_0000, 2), 0, 0, 0, 0), Err(Full));
        for i in 0..=cap as u32 {
            assert_eq!(t.lookup(&udp(i, 1, 0xffff_0000, 2), 0).is_some(), i != 5);
        }
    }

    #[test]
    fn sweep_removes_expired_and_keeps_live() {
        let mut t = table(1000);
        let n = 900u32;
        for i in 0..n {
            let f = udp(i, 1, 10, 53);
            t.insert(&f, 0, 0, 0, i).unwrap();
            if i % 3 == 0 {
                // Replied: 180 s; the others stay unreplied: 30 s.
                assert_eq!(packet(&mut t, &f.reversed(), Dir::Reply, 0, 0), Update::Ok);
            }
        }
        let now = 60 * S;
        // A small budget needs several calls to cover the table.
        let slots = t.slots.len();
        let mut removed = 0;
        for _ in 0..slots / 100 {
            removed += t.sweep(now, 100);
        }
        removed += t.sweep(now, slots);
        assert_eq!(removed, 600);
        assert_eq!(t.len(), 300);
        assert_eq!(t.iter(now).count(), 300);
        for i in 0..n {
            assert_eq!(
                t.lookup(&udp(i, 1, 10, 53), now).is_some(),
                i % 3 == 0,
                "{i}"
            );
        }
        assert_eq!(t.sweep(now, slots), 0);
        assert_eq!(t.sweep(180 * S, 2 * slots), 300);
        assert!(t.is_empty());
    }

    /// Random inserts, lookups and removals against a `HashMap`, in a table sized so that
    /// clusters are long, wrap around the end and hit `Full`.
    fn model_check(capacity: usize, flows: usize, ops: usize, seed: u64) {
        let mut t = ConnTable::with_seed(capacity, Timeouts::default(), seed);
        let mut rng = Rng(seed | 1);
        let pool: Vec<Flow> = (0..flows)
            .map(|_| Flow {
                zone: rng.below(3) as u16,
                proto: [PROTO_TCP, PROTO_UDP, PROTO_ICMP][rng.below(3)],
                src: rng.below(8) as u32,
                dst: rng.below(8) as u32,
                sport: rng.below(8) as u16,
                dport: rng.below(8) as u16,
            })
            .collect();
        // Canonical flow (as inserted) of each connection, keyed by its original flow or its
        // reverse.
        let mut model: HashMap<Flow, (Flow, u32)> = HashMap::new();
        for op in 0..ops {
            let f = pool[rng.below(flows)];
            let known = model.get(&f).or_else(|| model.get(&f.reversed())).copied();
            match rng.below(4) {
                0 | 1 => {
                    let tag = op as u32;
                    match t.insert(&f, SYN, 0, 0, tag) {
                        Ok(hit) => {
                            if let Some((orig, _)) = known {
                                model.remove(&orig);
                            }
                            model.insert(f, (f, tag));
                            assert_eq!(t.tag(hit.slot), tag);
                        }
                        Err(Full) => {
                            assert!(known.is_none());
                            assert_eq!(model.len(), t.capacity());
                        }
                    }
                }
                2 => match (t.lookup(&f, 0), known) {
                    (Some(hit), Some((orig, tag))) => {
                        assert_eq!(t.tag(hit.slot), tag);
                        let dir = if orig == f { Dir::Original } else { Dir::Reply };
                        assert_eq!(hit.dir, dir, "{f:?} vs {orig:?}");
                    }
                    (None, None) => {}
                    (got, want) => panic!("op {op}: {f:?}: got {got:?}, want {want:?}"),
                },
                _ => {
                    if let Some(hit) = t.lookup(&f, 0) {
                        t.remove(hit.slot);
                        model.remove(&known.unwrap().0);
                    } else {
                        assert!(known.is_none());
                    }
                }
            }
            assert_eq!(t.len(), model.len());
            if op % 5000 == 0 || op == ops - 1 {
                for (orig, tag) in model.values() {
                    let hit = t.lookup(orig, 0).expect("model entry findable");
                    assert_eq!(t.tag(hit.slot), *tag);
                }
                assert_eq!(t.iter(0).count(), model.len());
            }
        }
    }

    #[test]
    fn random_ops_match_a_hashmap_model() {
        model_check(1500, 3000, 100_000, 0x1234_5678);
        model_check(7, 40, 20_000, 99);
        model_check(100, 400, 20_000, 7);
    }
}
