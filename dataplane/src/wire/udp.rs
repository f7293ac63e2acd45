//! UDP header (RFC 768): a view checked once (header present, length field consistent with
//! the bytes), setters for rewriting in place, and `emit` for building a header.

use super::{be16, put16, WireError};

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LEN: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram whose header has been validated.
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf` (the IPv4 payload), checking it holds the 8-byte header and that the
    /// length field covers the header and fits in the bytes. Bytes after `len` (link
    /// padding) are allowed and ignored by [`Packet::payload`].
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = be16(b, field::LEN) as usize;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
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
    /// Length field (header + payload).
    // A header field, not a container length: an `is_empty` would mean nothing here.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LEN)
    }
    /// Checksum field (0: not computed, as the Geneve underlay sends).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }
    /// The bytes after the header, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let end = (self.len() as usize).min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        put16(self.buf.as_mut(), field::SRC_PORT, port);
    }
    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        put16(self.buf.as_mut(), field::DST_PORT, port);
    }
    /// Sets the length field. Call [`Packet::new_checked`] again before trusting the view
    /// if the new length could exceed the buffer; [`Packet::payload`] clamps either way.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        put16(self.buf.as_mut(), field::LEN, len);
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        put16(self.buf.as_mut(), field::CHECKSUM, csum);
    }
    /// The bytes after the header, writable (up to the buffer end).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

/// Writes a UDP header into `buf[..8]` for a payload of `payload_len` bytes, checksum 0
/// (not computed; allowed for IPv4, and what Geneve senders use). The caller sizes `buf`
/// (panics if shorter than 8) and keeps `payload_len <= 65535 - 8`.
#[inline]
pub fn emit(buf: &mut [u8], sport: u16, dport: u16, payload_len: usize) {
    debug_assert!(payload_len <= usize::from(u16::MAX) - HEADER_LEN);
    put16(buf, field::SRC_PORT, sport);
    put16(buf, field::DST_PORT, dport);
    put16(buf, field::LEN, (HEADER_LEN + payload_len) as u16);
    put16(buf, field::CHECKSUM, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The outer UDP header and first payload bytes of a Geneve frame sent by Open vSwitch
    // 3.1 (userspace datapath) between two network namespaces: 58776 -> 6081, len 126,
    // checksum 0 (see geneve.rs for the whole frame).
    const REAL: [u8; 12] = [
        0xe5, 0x98, 0x17, 0xc1, 0x00, 0x7e, 0x00, 0x00, 0x03, 0x00, 0x65, 0x58,
    ];

    fn real_datagram() -> Vec<u8> {
        let mut b = REAL.to_vec();
        b.resize(126, 0);
        b
    }

    #[test]
    fn real_header_parses() {
        let b = real_datagram();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 58776);
        assert_eq!(p.dst_port(), 6081);
        assert_eq!(p.len(), 126);
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload().len(), 118);
        assert_eq!(&p.payload()[..4], &[0x03, 0x00, 0x65, 0x58]);
    }

    #[test]
    fn emit_reproduces_real_header() {
        let mut out = [0xffu8; 8];
        emit(&mut out, 58776, 6081, 118);
        assert_eq!(out, REAL[..8]);
    }

    #[test]
    fn defects_are_named() {
        let b = real_datagram();
        assert_eq!(
            Packet::new_checked(&b[..7]).err(),
            Some(WireError::Truncated)
        );
        // Length field larger than the bytes.
        assert_eq!(
            Packet::new_checked(&b[..125]).err(),
            Some(WireError::Truncated)
        );
        let mut s = b.clone();
        s[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&s[..]).err(),
            Some(WireError::Malformed)
        );
        // Trailing padding after `len` is allowed and not part of the payload.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(
            Packet::new_checked(&padded[..]).unwrap().payload().len(),
            118
        );
    }

    #[test]
    fn setters_write_in_place() {
        let mut b = real_datagram();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(8);
        p.set_checksum(0xabcd);
        p.payload_mut()[0] = 0x42;
        assert_eq!(&b[..9], &[0, 1, 0, 2, 0, 8, 0xab, 0xcd, 0x42]);
        assert!(Packet::new_checked(&b[..]).unwrap().payload().is_empty());
    }
}
