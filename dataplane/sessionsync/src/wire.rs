//! The session-sync datagram: a 36-byte header, fixed-size 32-byte session records, and an
//! HMAC-SHA256 tag over everything before it. Everything is big-endian.
//!
//! ```text
//!  0      4    5     6       8        12        16       20           28           36
//!  | AGS1 | type | flags | count | group | sender | epoch | seq (u64) | ack (u64) | records… | tag (32)
//! ```
//!
//! A datagram that is too short, has another magic, an unknown type, a record count that
//! does not match its length, or a tag that does not verify is refused before anything in
//! it is looked at further ([`Error`]); the receiver counts each kind.

use std::net::Ipv4Addr;

use ring::hmac;

/// First four bytes of every datagram (protocol version 1).
pub const MAGIC: [u8; 4] = *b"AGS1";
/// Header bytes.
pub const HEADER_LEN: usize = 36;
/// Bytes of one session record.
pub const RECORD_LEN: usize = 32;
/// Bytes of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Session events, sequenced (`seq`).
    Data = 1,
    /// The receiver has everything up to `ack` (cumulative) in `epoch`.
    Ack = 2,
    /// The receiver wants a bulk resync (it joined, or the sender's epoch is new to it).
    ResyncRequest = 3,
    /// Sequenced: a bulk resync starts here; every session follows as an Add.
    BulkBegin = 4,
    /// Sequenced: the bulk resync is complete (`ack` carries the number of sessions sent).
    BulkEnd = 5,
}

impl Kind {
    /// The kind of a type byte, if it is one.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::Ack,
            3 => Kind::ResyncRequest,
            4 => Kind::BulkBegin,
            5 => Kind::BulkEnd,
            _ => return None,
        })
    }

    /// True for the kinds that travel in the sequenced stream.
    pub fn sequenced(self) -> bool {
        matches!(self, Kind::Data | Kind::BulkBegin | Kind::BulkEnd)
    }
}

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A new session (or one re-sent by a bulk resync).
    Add = 1,
    /// Its state or timeout changed.
    Update = 2,
    /// It ended.
    Delete = 3,
}

/// Identifies a session: VPC, protocol, the inside endpoint and the remote one. With
/// endpoint-dependent NAT the same inside endpoint maps differently per remote, so the
/// remote is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// VNI of the VPC the inside endpoint is in.
    pub vpc: u32,
    /// IP protocol (6 TCP, 17 UDP, 1 ICMP: the port is the ICMP id).
    pub proto: u8,
    /// The VM's address.
    pub inside_ip: Ipv4Addr,
    /// The VM's port.
    pub inside_port: u16,
    /// The external peer's address.
    pub remote_ip: Ipv4Addr,
    /// The external peer's port.
    pub remote_port: u16,
}

/// How the session is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Source NAT, endpoint-independent mapping (one outside port per inside endpoint).
    SnatEndpointIndependent,
    /// Source NAT, endpoint-dependent mapping (outside port chosen per remote).
    SnatEndpointDependent,
    /// Floating IP: 1:1 NAT.
    FloatingIp,
}

/// One session as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// Add, update or delete.
    pub op: Op,
    /// Which session.
    pub key: SessionKey,
    /// Translation kind.
    pub nat: NatKind,
    /// The outside address it is translated to.
    pub outside_ip: Ipv4Addr,
    /// The outside port.
    pub outside_port: u16,
    /// Connection-tracking state (the dataplane's TCP state number; 0 for UDP/ICMP).
    pub state: u8,
    /// Milliseconds until it expires if nothing more is seen.
    pub expires_in_ms: u32,
}

/// Header fields of a parsed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Kind.
    pub kind: Kind,
    /// Gateway group.
    pub group: u32,
    /// Sender's node id.
    pub sender: u32,
    /// Sender's stream epoch (a new one after each restart).
    pub epoch: u32,
    /// Sequence number (sequenced kinds).
    pub seq: u64,
    /// Cumulative ack (Ack), or the session count (BulkEnd).
    pub ack: u64,
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than a header and a tag.
    #[error("truncated: {0} bytes")]
    Truncated(usize),
    /// Not `AGS1`.
    #[error("bad magic")]
    Magic,
    /// The tag does not verify (wrong key, or changed on the way).
    #[error("authentication failed")]
    Auth,
    /// An unknown type byte.
    #[error("unknown message type {0}")]
    Kind(u8),
    /// The count does not match the length, or a record is invalid.
    #[error("malformed records")]
    Records,
}

impl Error {
    /// Every kind, in counter order.
    pub const ALL: [Error; 5] = [
        Error::Truncated(0),
        Error::Magic,
        Error::Auth,
        Error::Kind(0),
        Error::Records,
    ];

    /// Stable snake_case name (metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Error::Truncated(_) => "truncated",
            Error::Magic => "magic",
            Error::Auth => "auth",
            Error::Kind(_) => "kind",
            Error::Records => "records",
        }
    }

    /// Index in [`Error::ALL`].
    pub fn index(self) -> usize {
        match self {
            Error::Truncated(_) => 0,
            Error::Magic => 1,
            Error::Auth => 2,
            Error::Kind(_) => 3,
            Error::Records => 4,
        }
    }
}

/// The shared key (from the gateway group's configuration).
#[derive(Clone)]
pub struct Key(hmac::Key);

impl Key {
    /// An HMAC-SHA256 key from `secret` (any length; 32 random bytes recommended).
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Records that fit in a datagram of `mtu` bytes of UDP payload.
pub fn records_per_datagram(mtu: usize) -> usize {
    mtu.saturating_sub(HEADER_LEN + TAG_LEN) / RECORD_LEN
}

/// Builds a signed datagram.
pub fn encode(key: &Key, h: &Header, records: &[Record]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len() * RECORD_LEN + TAG_LEN);
    b.extend_from_slice(&MAGIC);
    b.push(h.kind as u8);
    b.push(0);
    b.extend_from_slice(&(records.len() as u16).to_be_bytes());
    b.extend_from_slice(&h.group.to_be_bytes());
    b.extend_from_slice(&h.sender.to_be_bytes());
    b.extend_from_slice(&h.epoch.to_be_bytes());
    b.extend_from_slice(&h.seq.to_be_bytes());
    b.extend_from_slice(&h.ack.to_be_bytes());
    for r in records {
        encode_record(r, &mut b);
    }
    let tag = hmac::sign(&key.0, &b);
    b.extend_from_slice(tag.as_ref());
    b
}

fn encode_record(r: &Record, b: &mut Vec<u8>) {
    b.push(r.op as u8);
    b.push(r.key.proto);
    b.push(r.state);
    b.push(match r.nat {
        NatKind::SnatEndpointIndependent => 1,
        NatKind::SnatEndpointDependent => 2,
        NatKind::FloatingIp => 3,
    });
    b.extend_from_slice(&r.key.vpc.to_be_bytes());
    b.extend_from_slice(&r.key.inside_ip.octets());
    b.extend_from_slice(&r.key.inside_port.to_be_bytes());
    b.extend_from_slice(&r.key.remote_port.to_be_bytes());
    b.extend_from_slice(&r.key.remote_ip.octets());
    b.extend_from_slice(&r.outside_ip.octets());
    b.extend_from_slice(&r.outside_port.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&r.expires_in_ms.to_be_bytes());
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn ip(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn decode_record(b: &[u8]) -> Option<Record> {
    let op = match b[0] {
        1 => Op::Add,
        2 => Op::Update,
        3 => Op::Delete,
        _ => return None,
    };
    let nat = match b[3] {
        1 => NatKind::SnatEndpointIndependent,
        2 => NatKind::SnatEndpointDependent,
        3 => NatKind::FloatingIp,
        _ => return None,
    };
    if b[26..28] != [0, 0] {
        return None;
    }
    Some(Record {
        op,
        key: SessionKey {
            vpc: be32(b, 4),
            proto: b[1],
            inside_ip: ip(b, 8),
            inside_port: be16(b, 12),
            remote_port: be16(b, 14),
            remote_ip: ip(b, 16),
        },
        nat,
        outside_ip: ip(b, 20),
        outside_port: be16(b, 24),
        state: b[2],
        expires_in_ms: be32(b, 28),
    })
}

/// Verifies and parses a datagram. The tag is checked first: nothing of an unauthenticated
/// datagram is interpreted.
pub fn decode(key: &Key, b: &[u8]) -> Result<(Header, Vec<Record>), Error> {
    if b.len() < HEADER_LEN + TAG_LEN {
        return Err(Error::Truncated(b.len()));
    }
    if b[0..4] != MAGIC {
        return Err(Error::Magic);
    }
    let (body, tag) = b.split_at(b.len() - TAG_LEN);
    hmac::verify(&key.0, body, tag).map_err(|_| Error::Auth)?;
    let kind = Kind::from_u8(body[4]).ok_or(Error::Kind(body[4]))?;
    let count = usize::from(be16(body, 6));
    if body.len() != HEADER_LEN + count * RECORD_LEN || body[5] != 0 {
        return Err(Error::Records);
    }
    let h = Header {
        kind,
        group: be32(body, 8),
        sender: be32(body, 12),
        epoch: be32(body, 16),
        seq: be64(body, 20),
        ack: be64(body, 28),
    };
    let records = body[HEADER_LEN..]
        .chunks_exact(RECORD_LEN)
        .map(decode_record)
        .collect::<Option<Vec<_>>>()
        .ok_or(Error::Records)?;
    Ok((h, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(i: u32) -> Record {
        Record {
            op: Op::Add,
            key: SessionKey {
                vpc: 100,
                proto: 6,
                inside_ip: Ipv4Addr::from(0x0a01_0000 + i),
                inside_port: 40_000 + (i % 20_000) as u16,
                remote_ip: Ipv4Addr::new(198, 51, 100, 7),
                remote_port: 443,
            },
            nat: NatKind::SnatEndpointDependent,
            outside_ip: Ipv4Addr::new(203, 0, 113, 10),
            outside_port: 1024 + (i % 60_000) as u16,
            state: 3,
            expires_in_ms: 7_200_000,
        }
    }

    fn header() -> Header {
        Header {
            kind: Kind::Data,
            group: 7,
            sender: 1,
            epoch: 3,
            seq: 42,
            ack: 0,
        }
    }

    #[test]
    fn round_trips_and_fits_the_mtu() {
        let key = Key::new(b"k");
        let n = records_per_datagram(1400);
        assert_eq!(n, 41);
        let recs: Vec<Record> = (0..n as u32).map(record).collect();
        let d = encode(&key, &header(), &recs);
        assert!(d.len() <= 1400, "{}", d.len());
        let (h, r) = decode(&key, &d).unwrap();
        assert_eq!(h, header());
        assert_eq!(r, recs);
    }

    #[test]
    fn forged_changed_or_truncated_datagrams_are_refused() {
        let key = Key::new(b"the group key");
        let d = encode(&key, &header(), &[record(1), record(2)]);
        assert_eq!(decode(&Key::new(b"another key"), &d), Err(Error::Auth));
        for i in 4..d.len() {
            let mut x = d.clone();
            x[i] ^= 0x20;
            assert_eq!(decode(&key, &x), Err(Error::Auth), "byte {i} flipped");
        }
        for len in 0..d.len() {
            assert!(decode(&key, &d[..len]).is_err(), "{len} bytes accepted");
        }
        let mut x = d.clone();
        x[0] = b'X';
        assert_eq!(decode(&key, &x), Err(Error::Magic));
        // A well-signed datagram whose count lies is still refused.
        let mut body = d[..d.len() - TAG_LEN].to_vec();
        body[7] = 3;
        let tag = hmac::sign(&key.0, &body);
        body.extend_from_slice(tag.as_ref());
        assert_eq!(decode(&key, &body), Err(Error::Records));
    }
}
