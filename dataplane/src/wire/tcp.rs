//! TCP header (RFC 9293), read-only and minimal: ports, flags and header length, which is
//! what security groups and connection tracking look at.

use super::{be16, be32, WireError};

/// Minimum TCP header length (data offset 5).
pub const MIN_HEADER_LEN: usize = 20;

/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
}

/// A view of a TCP segment whose header length has been validated.
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf` (the IPv4 payload): at least 20 bytes (`Truncated`), a data offset of at
    /// least 5 words (`Malformed`) and a header that fits in the bytes (`Truncated`).
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = ((b[field::DATA_OFF] >> 4) as usize) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }
    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buf.as_ref(), field::SEQ)
    }
    /// Acknowledgment number (meaningful when [`ACK`] is set).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buf.as_ref(), field::ACK)
    }
    /// Flags byte (byte 13: CWR ECE URG ACK PSH RST SYN FIN); test with [`SYN`] etc.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::FLAGS]
    }
    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }
    /// The bytes after the header (up to the buffer end: the IPv4 view bounds it).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Linux 6.18 on loopback: a connect() to a closed port, SYN with MSS, SACK-permitted,
    // timestamps and window scale (data offset 10), then the RST/ACK (IPv4 headers cut).
    const SYN_SEG: &str =
        "c2b814510f5c864000000000a002ffd7fe3000000204ffd70402080ae086b5b4000000000103030a";
    const RST_SEG: &str = "1451c2b8000000000f5c86415014000045270000";

    #[test]
    fn real_syn_and_rst_parse() {
        let syn = hex(SYN_SEG);
        let p = Packet::new_checked(&syn[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49848, 5201));
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.seq_number(), 0x0f5c_8640);
        assert!(p.payload().is_empty());

        let rst = hex(RST_SEG);
        let p = Packet::new_checked(&rst[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (5201, 49848));
        assert_eq!(p.flags(), RST | ACK);
        assert_eq!(p.flags() & (FIN | SYN | PSH), 0);
        assert_eq!(p.ack_number(), 0x0f5c_8641);
        assert_eq!(p.header_len(), 20);
    }

    #[test]
    fn defects_are_named() {
        let syn = hex(SYN_SEG);
        assert_eq!(
            Packet::new_checked(&syn[..19]).err(),
            Some(WireError::Truncated)
        );
        // Options cut: data offset 10 needs 40 bytes.
        assert_eq!(
            Packet::new_checked(&syn[..39]).err(),
            Some(WireError::Truncated)
        );
        let mut bad = syn.clone();
        bad[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&bad[..]).err(),
            Some(WireError::Malformed)
        );
    }

    #[test]
    fn every_truncation_and_offset_is_safe() {
        let syn = hex(SYN_SEG);
        for n in 0..=syn.len() {
            if let Ok(p) = Packet::new_checked(&syn[..n]) {
                let _ = (p.flags(), p.payload().len());
            }
        }
        let mut b = syn.clone();
        for off in 0..=255u8 {
            b[12] = off;
            if let Ok(p) = Packet::new_checked(&b[..]) {
                assert!(p.header_len() <= b.len());
                let _ = p.payload();
            }
        }
    }
}
