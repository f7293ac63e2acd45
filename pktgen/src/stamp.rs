//! The measurement stamp every generated packet carries in the last [`STAMP_LEN`] bytes of
//! its IPv4 datagram (the innermost one ends there too when the packet is Geneve-encapsulated):
//!
//! ```text
//! offset  size  field
//!      0     2  magic 0xAE61 (big endian)
//!      2     8  stream id (16 bits) << 48 | sequence number (48 bits), big endian
//!     10     8  transmit TSC (rdtsc when the packet was built), big endian
//! ```
//!
//! The receiver finds the stamp from the end of the outer IPv4 datagram (its total length),
//! so it survives MAC rewrites, TTL changes, VLAN tags pushed or popped and Ethernet padding.

/// Bytes of the stamp.
pub const STAMP_LEN: usize = 18;
/// First two bytes of every stamp.
pub const MAGIC: u16 = 0xAE61;
/// Sequence numbers wrap at 2^48 (at 100 Mpps, after 32 days).
pub const SEQ_MASK: u64 = (1 << 48) - 1;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The transmitting stream (one per tx core).
    pub stream: u16,
    /// Sequence number in the stream, from 0.
    pub seq: u64,
    /// TSC at transmission.
    pub tsc: u64,
}

impl Stamp {
    /// The stamp's bytes.
    #[inline]
    pub fn encode(&self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        let word = (u64::from(self.stream) << 48) | (self.seq & SEQ_MASK);
        b[2..10].copy_from_slice(&word.to_be_bytes());
        b[10..18].copy_from_slice(&self.tsc.to_be_bytes());
        b
    }

    /// Decodes stamp bytes; `None` without the magic.
    #[inline]
    pub fn decode(b: &[u8; STAMP_LEN]) -> Option<Stamp> {
        if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
            return None;
        }
        let word = u64::from_be_bytes(b[2..10].try_into().ok()?);
        Some(Stamp {
            stream: (word >> 48) as u16,
            seq: word & SEQ_MASK,
            tsc: u64::from_be_bytes(b[10..18].try_into().ok()?),
        })
    }
}

/// Finds and decodes the stamp of a received Ethernet frame (up to two VLAN tags), or `None`
/// for anything that is not one of ours.
#[inline]
pub fn read_stamp(frame: &[u8]) -> Option<Stamp> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        off += 4;
        ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = off + 2;
    let total = usize::from(u16::from_be_bytes([
        *frame.get(ip + 2)?,
        *frame.get(ip + 3)?,
    ]));
    if total < 20 + STAMP_LEN {
        return None;
    }
    let end = ip + total;
    let bytes: &[u8; STAMP_LEN] = frame.get(end - STAMP_LEN..end)?.try_into().ok()?;
    Stamp::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Stamp {
            stream: 3,
            seq: 0x1234_5678_9abc,
            tsc: u64::MAX - 5,
        };
        assert_eq!(Stamp::decode(&s.encode()), Some(s));
        let mut b = s.encode();
        b[0] = 0;
        assert_eq!(Stamp::decode(&b), None);
    }

    #[test]
    fn found_behind_vlan_and_before_padding() {
        let s = Stamp {
            stream: 1,
            seq: 42,
            tsc: 7,
        };
        // Ethernet + VLAN + IPv4 (20) + UDP (8) + stamp, then 6 bytes of Ethernet padding.
        let mut f = vec![0u8; 18];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f[16..18].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 28];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((28 + STAMP_LEN) as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&s.encode());
        f.extend_from_slice(&[0xee; 6]);
        assert_eq!(read_stamp(&f), Some(s));
        assert_eq!(read_stamp(&f[..40]), None, "truncated");
        f[17] = 0x06; // not IPv4
        assert_eq!(read_stamp(&f), None);
    }
}
