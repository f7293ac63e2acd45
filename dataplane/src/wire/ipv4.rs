//! IPv4 header (RFC 791): a view checked once for everything a router must verify, setters
//! for forwarding (TTL with incremental checksum), and option scanning for source routes.

use super::checksum;
use super::{be16, be32, put16, put32};

/// Minimum IPv4 header length.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol numbers the dataplane looks at.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// What is wrong with an IPv4 header, in the order a router checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip4Error {
    /// Fewer than 20 bytes.
    Truncated,
    /// Version is not 4.
    BadVersion,
    /// IHL < 5 or the header is longer than the bytes.
    BadIhl,
    /// Total length exceeds the bytes or is shorter than the header.
    BadLength,
    /// Header checksum fails.
    BadChecksum,
    /// Loose or strict source route option present.
    SourceRoute,
}

/// A view of an IPv4 packet whose header has been validated.
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Validates the header as RFC 1812 §5.2.2 asks (length, version, IHL, total length,
    /// checksum) and rejects source-route options.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self, Ip4Error> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Ip4Error::Truncated);
        }
        let vi = b[field::VER_IHL];
        if vi >> 4 != 4 {
            return Err(Ip4Error::BadVersion);
        }
        let hl = ((vi & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(Ip4Error::BadIhl);
        }
        let total = be16(b, field::LEN) as usize;
        if total > b.len() || total < hl {
            return Err(Ip4Error::BadLength);
        }
        let ok = match b[..hl].try_into() {
            Ok(h20) => checksum::verify20(h20),
            Err(_) => checksum::verify(&b[..hl]),
        };
        if !ok {
            return Err(Ip4Error::BadChecksum);
        }
        if hl > MIN_HEADER_LEN && has_source_route(&b[MIN_HEADER_LEN..hl]) {
            return Err(Ip4Error::SourceRoute);
        }
        Ok(Packet { buf })
    }

    /// Wraps bytes already known to hold a valid header (e.g. one this code emitted).
    /// Accessors still never read past the buffer: callers guarantee `len >= 20`.
    #[inline]
    pub fn new_unchecked(buf: T) -> Self {
        Packet { buf }
    }

    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// Type of service / DSCP+ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[field::TOS]
    }
    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LEN)
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), field::IDENT)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }
    /// More-fragments flag or a non-zero offset: this is a fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }
    /// Non-zero fragment offset: not the first fragment.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x1fff
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }
    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTOCOL]
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }
    /// Source address (host order).
    #[inline]
    pub fn src(&self) -> u32 {
        be32(self.buf.as_ref(), field::SRC)
    }
    /// Destination address (host order).
    #[inline]
    pub fn dst(&self) -> u32 {
        be32(self.buf.as_ref(), field::DST)
    }
    /// Bytes after the header, up to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let end = (self.total_len() as usize).min(b.len());
        &b[self.header_len().min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Decrements TTL by one and patches the checksum incrementally (RFC 1624).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_mut();
        // TTL and protocol form one 16-bit word: compute the new word in a register and
        // store it once (a byte store followed by a word load stalls store forwarding).
        let old = be16(b, field::TTL);
        let new = old.wrapping_sub(0x0100);
        put16(b, field::TTL, new);
        let c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        put16(b, field::CHECKSUM, c);
    }
    /// Sets source and destination addresses (checksum not updated).
    #[inline]
    pub fn set_addrs(&mut self, src: u32, dst: u32) {
        let b = self.buf.as_mut();
        put32(b, field::SRC, src);
        put32(b, field::DST, dst);
    }
    /// Sets TTL (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf.as_mut()[field::TTL] = ttl;
    }
    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        put16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, field::CHECKSUM, c);
    }
    /// The bytes after the header, writable (up to the buffer end).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buf.as_mut()[hl..]
    }
}

/// Writes a 20-byte IPv4 header without options into `out[..20]`, checksum filled.
pub fn emit_header(
    out: &mut [u8],
    total_len: u16,
    ident: u16,
    ttl: u8,
    proto: u8,
    src: u32,
    dst: u32,
) {
    emit_header_flags(out, total_len, ident, 0, ttl, proto, src, dst);
}

/// [`emit_header`] with the flags/fragment-offset word `flags_off` (e.g. DF, 0x4000).
///
/// The checksum is summed from the field values in registers and the 20 bytes are stored
/// once: writing the fields one by one and then reading them back as words for the
/// checksum stalled on store forwarding (~30 clocks per encapsulated packet).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn emit_header_flags(
    out: &mut [u8],
    total_len: u16,
    ident: u16,
    flags_off: u16,
    ttl: u8,
    proto: u8,
    src: u32,
    dst: u32,
) {
    let ttl_proto = u16::from(ttl) << 8 | u16::from(proto);
    let sum = 0x4500u32
        + u32::from(total_len)
        + u32::from(ident)
        + u32::from(flags_off)
        + u32::from(ttl_proto)
        + (src >> 16)
        + (src & 0xffff)
        + (dst >> 16)
        + (dst & 0xffff);
    let c = !checksum::fold(sum);
    let mut h = [0u8; MIN_HEADER_LEN];
    h[field::VER_IHL] = 0x45;
    put16(&mut h, field::LEN, total_len);
    put16(&mut h, field::IDENT, ident);
    put16(&mut h, field::FLG_OFF, flags_off);
    put16(&mut h, field::TTL, ttl_proto);
    put16(&mut h, field::CHECKSUM, c);
    put32(&mut h, field::SRC, src);
    put32(&mut h, field::DST, dst);
    out[..MIN_HEADER_LEN].copy_from_slice(&h);
}

/// Scans IPv4 options for LSRR (131) or SSRR (137). Malformed option lists end the scan.
fn has_source_route(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return false,
            1 => i += 1,
            131 | 137 => return true,
            _ => {
                let Some(&len) = opts.get(i + 1) else {
                    return false;
                };
                if len < 2 {
                    return false;
                }
                i += len as usize;
            }
        }
    }
    false
}

/// True for a source address a router must not accept (RFC 1812 §5.3.7): 0/8, 127/8,
/// multicast, class E and broadcast.
#[inline]
pub fn is_martian_source(src: u32) -> bool {
    let first = (src >> 24) as u8;
    first == 0 || first == 127 || first >= 224
}

/// True for a destination a router must never forward: 0/8 and 127/8 (RFC 1812 §5.3.7).
#[inline]
pub fn is_martian_destination(dst: u32) -> bool {
    let first = (dst >> 24) as u8;
    first == 0 || first == 127
}

/// True for a destination that must never be forwarded or answered with an ICMP error:
/// multicast, limited broadcast, class E.
#[inline]
pub fn is_multicast_or_broadcast(dst: u32) -> bool {
    (dst >> 24) as u8 >= 224
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 header + VRRP body from a real keepalived 2.2.7 advert (shared/testdata/vrrp).
    fn vrrp_v2() -> Vec<u8> {
        let hex =
            "45c0002800010000ff70d0440a4d0001e0000012214d960100013dff0a4d00640000000000000000";
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn real_packet_parses() {
        let b = vrrp_v2();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ttl(), 255);
        assert_eq!(p.protocol(), 112);
        assert_eq!(p.src(), 0x0a4d_0001);
        assert_eq!(p.dst(), 0xe000_0012);
        assert_eq!(p.payload().len(), 20);
        assert!(!p.is_fragment());
    }

    #[test]
    fn each_defect_is_named() {
        let good = vrrp_v2();
        assert_eq!(
            Packet::new_checked(&good[..19]).err(),
            Some(Ip4Error::Truncated)
        );
        let mut b = good.clone();
        b[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Ip4Error::BadVersion)
        );
        let mut b = good.clone();
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Ip4Error::BadIhl));
        let mut b = good.clone();
        b[0] = 0x4f; // 60-byte header > 40 bytes
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Ip4Error::BadIhl));
        let mut b = good.clone();
        b[3] = 41;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Ip4Error::BadLength));
        let mut b = good.clone();
        b[11] ^= 1;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Ip4Error::BadChecksum)
        );
    }

    #[test]
    fn source_route_option_is_rejected() {
        let mut b = vec![0u8; 28];
        b[20] = 131; // LSRR
        b[21] = 7;
        b[22] = 4;
        emit_header(&mut b, 28, 1, 64, PROTO_UDP, 0x0a000001, 0x0a000002);
        b[0] = 0x46; // IHL 6: 4 bytes of options
        b[20..24].copy_from_slice(&[131, 3, 4, 0]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Ip4Error::SourceRoute)
        );
        b[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOPs + EOL
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert!(Packet::new_checked(&b[..]).is_ok());
    }

    #[test]
    fn emitted_headers_verify_for_any_fields() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (len, ident) = (x as u16, (x >> 16) as u16);
            let (src, dst) = (x.rotate_left(7), !x);
            for flags in [0u16, 0x4000] {
                let mut b = [0u8; 20];
                emit_header_flags(&mut b, len, ident, flags, (x >> 3) as u8, x as u8, src, dst);
                assert!(checksum::verify(&b), "{b:02x?}");
                let p = Packet::new_unchecked(&b[..]);
                assert_eq!((p.total_len(), p.ttl()), (len, (x >> 3) as u8));
                assert_eq!(p.dont_frag(), flags != 0);
                assert_eq!((be32(&b, 12), be32(&b, 16)), (src, dst));
            }
        }
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = vrrp_v2();
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.decrement_ttl();
        assert_eq!(p.ttl(), 254);
        assert!(Packet::new_checked(&b[..]).is_ok());
    }

    #[test]
    fn martians() {
        assert!(is_martian_source(0));
        assert!(is_martian_source(0x7f00_0001));
        assert!(is_martian_source(0xe000_0001));
        assert!(is_martian_source(0xffff_ffff));
        assert!(!is_martian_source(0x0a00_0001));
    }
}
