//! Connection tracking for stateful security groups: one [`ConnTable`] per worker, owned by
//! that worker alone (no locks, no sharing), sans-I/O (time is the `now_ns` argument).
//!
//! This module owns the value types a caller sees — the packet's [`Flow`], the [`Hit`] a lookup
//! returns, the [`ConnState`] names, the [`Timeouts`] — and re-exports the table
//! ([`ConnTable`], in `table.rs`); [`tcp`] holds the TCP flag constants and state machine.
//!
//! Per packet the caller does:
//! ```text
//! match table.lookup(&flow, now) {
//!     Some(hit) => table.update(hit, flags, len, now)   // Ok: pass, Invalid: count and drop
//!     None      => policy says allow? table.insert(&flow, flags, len, now, tag)   // Err(Full): drop
//! }
//! ```
//! and, once per poll loop, `table.sweep(now, budget)` to expire idle entries.

pub(crate) mod table;
pub mod tcp;

pub use table::{ConnTable, Probe};

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A packet's flow as seen in the direction it travels. For ICMP echo request/reply the
/// caller sets `sport = dport =` the echo identifier; for protocols without ports, both 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Conntrack zone: the local VM port index, so identical 5-tuples of two VMs never meet.
    pub zone: u16,
    /// IP protocol number ([`PROTO_TCP`], [`PROTO_UDP`], [`PROTO_ICMP`], others).
    pub proto: u8,
    /// IPv4 source address (host order).
    pub src: u32,
    /// IPv4 destination address (host order).
    pub dst: u32,
    /// Source port (ICMP echo: the identifier).
    pub sport: u16,
    /// Destination port (ICMP echo: the identifier).
    pub dport: u16,
}

/// Which way a packet travels relative to the packet that created the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Same direction as the connection's first packet.
    Original,
    /// The opposite direction.
    Reply,
}

/// Where a lookup or insert found a connection. Valid only until the next call that can move
/// entries: `insert`, `remove`, `sweep`, and `lookup` (which removes an expired entry it meets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The entry's slot, for [`ConnTable::update`], [`ConnTable::tag`], [`ConnTable::remove`].
    pub slot: u32,
    /// The packet's direction within the connection.
    pub dir: Dir,
}

/// The outcome of [`ConnTable::update`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// The packet fits the connection: state, expiry and counters were updated.
    Ok,
    /// The packet does not fit the connection's state (bad TCP flag combination, FIN or ACK
    /// before the handshake answered, or a stale slot); nothing was changed. Drop and count it.
    Invalid,
}

/// The table holds [`ConnTable::capacity`] entries: no room for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A connection's state; its [`Timeouts`] entry is how long it lives without packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// TCP: SYN seen from the originator, no SYN/ACK yet.
    TcpSynSent,
    /// TCP: SYN/ACK (or simultaneous SYN) seen from the responder.
    TcpSynRecv,
    /// TCP: handshake completed, or picked up mid-stream.
    TcpEstablished,
    /// TCP: one side sent FIN.
    TcpFinWait,
    /// TCP: the other side acknowledged that FIN.
    TcpCloseWait,
    /// TCP: both sides sent FIN.
    TcpLastAck,
    /// TCP: the last ACK after both FINs was seen.
    TcpTimeWait,
    /// TCP: reset (or created by a packet that cannot start a connection).
    TcpClosed,
    /// UDP: packets in the original direction only.
    UdpUnreplied,
    /// UDP: at least one reply seen.
    UdpReplied,
    /// ICMP (echo, identified by its identifier).
    Icmp,
    /// Any other protocol.
    Other,
}

/// How long a connection lives without packets, per state, in nanoseconds. `Default` gives
/// Linux `nf_conntrack`-like values, with `tcp_established` cut to 2 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP SYN sent, no answer: 30 s (Linux 120 s; shorter to bound SYN floods).
    pub tcp_syn_sent: u64,
    /// TCP SYN/ACK seen, final ACK missing: 30 s (Linux 60 s).
    pub tcp_syn_recv: u64,
    /// TCP established: 7200 s (Linux 5 days).
    pub tcp_established: u64,
    /// TCP one FIN seen: 120 s (as Linux).
    pub tcp_fin_wait: u64,
    /// TCP first FIN acknowledged, other side still open: 60 s (as Linux).
    pub tcp_close_wait: u64,
    /// TCP both FINs seen: 30 s (as Linux).
    pub tcp_last_ack: u64,
    /// TCP closed by FINs: 120 s (as Linux, 2 MSL).
    pub tcp_time_wait: u64,
    /// TCP reset: 10 s (as Linux), long enough to pass the peer's last segments.
    pub tcp_closed: u64,
    /// UDP without reply: 30 s (as Linux).
    pub udp_unreplied: u64,
    /// UDP with replies: 180 s (Linux's "stream" timeout).
    pub udp_replied: u64,
    /// ICMP: 30 s (as Linux).
    pub icmp: u64,
    /// Other protocols: 600 s (as Linux's generic timeout).
    pub other: u64,
}

/// One live connection, for dumps (API, CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView {
    /// The flow in the original direction.
    pub flow: Flow,
    /// Current state.
    pub state: ConnState,
    /// Nanoseconds until the entry expires without further packets.
    pub expires_in_ns: u64,
    /// Packets seen, `[original, reply]`.
    pub packets: [u64; 2],
    /// Bytes seen (the `len` the caller passed), `[original, reply]`.
    pub bytes: [u64; 2],
    /// The caller's opaque value.
    pub tag: u32,
}

impl Flow {
    /// The same connection seen from the other side: addresses and ports swapped.
    pub fn reversed(&self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    /// A hash equal for both directions of the connection (the zone is left out: the two
    /// ports of a connection between VMs of one host have different zones). Used to pick
    /// the worker that owns the connection.
    #[inline]
    pub fn symmetric_hash(&self) -> u32 {
        let s = (u64::from(self.src) << 16) | u64::from(self.sport);
        let d = (u64::from(self.dst) << 16) | u64::from(self.dport);
        let (a, b) = if s <= d { (s, d) } else { (d, s) };
        let x = (a ^ b.rotate_left(29) ^ u64::from(self.proto) << 56)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32) as u32
    }
}

impl Dir {
    /// 0 for [`Dir::Original`], 1 for [`Dir::Reply`]: the index into counter pairs.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The other direction.
    pub const fn opposite(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
}

impl ConnState {
    /// Every state, in declaration order (`ALL[s as usize] == s`).
    pub const ALL: [ConnState; 12] = [
        ConnState::TcpSynSent,
        ConnState::TcpSynRecv,
        ConnState::TcpEstablished,
        ConnState::TcpFinWait,
        ConnState::TcpCloseWait,
        ConnState::TcpLastAck,
        ConnState::TcpTimeWait,
        ConnState::TcpClosed,
        ConnState::UdpUnreplied,
        ConnState::UdpReplied,
        ConnState::Icmp,
        ConnState::Other,
    ];

    /// The state's stable snake_case name, as the API and CLI show it.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::TcpSynSent => "tcp_syn_sent",
            ConnState::TcpSynRecv => "tcp_syn_recv",
            ConnState::TcpEstablished => "tcp_established",
            ConnState::TcpFinWait => "tcp_fin_wait",
            ConnState::TcpCloseWait => "tcp_close_wait",
            ConnState::TcpLastAck => "tcp_last_ack",
            ConnState::TcpTimeWait => "tcp_time_wait",
            ConnState::TcpClosed => "tcp_closed",
            ConnState::UdpUnreplied => "udp_unreplied",
            ConnState::UdpReplied => "udp_replied",
            ConnState::Icmp => "icmp",
            ConnState::Other => "other",
        }
    }
}

impl Timeouts {
    /// The timeout of `state`, in nanoseconds.
    pub const fn of(&self, state: ConnState) -> u64 {
        match state {
            ConnState::TcpSynSent => self.tcp_syn_sent,
            ConnState::TcpSynRecv => self.tcp_syn_recv,
            ConnState::TcpEstablished => self.tcp_established,
            ConnState::TcpFinWait => self.tcp_fin_wait,
            ConnState::TcpCloseWait => self.tcp_close_wait,
            ConnState::TcpLastAck => self.tcp_last_ack,
            ConnState::TcpTimeWait => self.tcp_time_wait,
            ConnState::TcpClosed => self.tcp_closed,
            ConnState::UdpUnreplied => self.udp_unreplied,
            ConnState::UdpReplied => self.udp_replied,
            ConnState::Icmp => self.icmp,
            ConnState::Other => self.other,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        const S: u64 = 1_000_000_000;
        Timeouts {
            tcp_syn_sent: 30 * S,
            tcp_syn_recv: 30 * S,
            tcp_established: 7200 * S,
            tcp_fin_wait: 120 * S,
            tcp_close_wait: 60 * S,
            tcp_last_ack: 30 * S,
            tcp_time_wait: 120 * S,
            tcp_closed: 10 * S,
            udp_unreplied: 30 * S,
            udp_replied: 180 * S,
            icmp: 30 * S,
            other: 600 * S,
        }
    }
}

impl std::fmt::Display for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection table is full")
    }
}

impl std::error::Error for Full {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_stable_and_all_is_in_order() {
        let names: Vec<&str> = ConnState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "tcp_syn_sent",
                "tcp_syn_recv",
                "tcp_established",
                "tcp_fin_wait",
                "tcp_close_wait",
                "tcp_last_ack",
                "tcp_time_wait",
                "tcp_closed",
                "udp_unreplied",
                "udp_replied",
                "icmp",
                "other"
            ]
        );
        for (i, s) in ConnState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(ConnState::TcpTimeWait.to_string(), "tcp_time_wait");
    }

    #[test]
    fn default_timeouts() {
        let t = Timeouts::default();
        assert_eq!(t.of(ConnState::TcpEstablished), 7200 * 1_000_000_000);
        assert_eq!(t.of(ConnState::TcpClosed), 10 * 1_000_000_000);
        assert_eq!(t.of(ConnState::UdpReplied), 180 * 1_000_000_000);
        assert_eq!(t.of(ConnState::Other), 600 * 1_000_000_000);
    }

    #[test]
    fn reversed_swaps_endpoints_only() {
        let f = Flow {
            zone: 3,
            proto: PROTO_TCP,
            src: 1,
            dst: 2,
            sport: 10,
            dport: 20,
        };
        let r = f.reversed();
        assert_eq!(
            (r.zone, r.proto, r.src, r.dst, r.sport, r.dport),
            (3, 6, 2, 1, 20, 10)
        );
        assert_eq!(r.reversed(), f);
        assert_eq!(Dir::Reply.index(), 1);
        assert_eq!(Dir::Original.opposite(), Dir::Reply);
    }
}
