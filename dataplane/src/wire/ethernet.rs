//! Ethernet II frame header (no VLAN tags; tagged frames show their TPID as the EtherType).

use super::{be16, put16, WireError};

/// Length of an Ethernet header.
pub const HEADER_LEN: usize = 14;
/// IPv4 EtherType.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP EtherType.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    pub const DST: core::ops::Range<usize> = 0..6;
    pub const SRC: core::ops::Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
}

/// A view of an Ethernet frame.
pub struct Frame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buf`, checking it holds at least an Ethernet header.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Frame { buf })
    }
    /// Destination MAC.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        self.buf.as_ref()[field::DST].try_into().unwrap_or_default()
    }
    /// Source MAC.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        self.buf.as_ref()[field::SRC].try_into().unwrap_or_default()
    }
    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), field::ETHERTYPE)
    }
    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac);
    }
    /// Sets the source MAC.
    #[inline]
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac);
    }
    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buf.as_mut(), field::ETHERTYPE, t);
    }
}

/// True if the first six bytes of `b` are `mac` (two integer compares).
#[inline(always)]
pub fn same_mac(b: &[u8], mac: &[u8; 6]) -> bool {
    let (a4, a2): ([u8; 4], [u8; 2]) = (super::array(b, 0), super::array(b, 4));
    let (m4, m2): ([u8; 4], [u8; 2]) = (super::array(mac, 0), super::array(mac, 4));
    u32::from_ne_bytes(a4) == u32::from_ne_bytes(m4)
        && u16::from_ne_bytes(a2) == u16::from_ne_bytes(m2)
}

/// True for a group (multicast or broadcast) address.
#[inline]
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits, either case, two per byte, `:` separators).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_vrrp_frame_header() {
        // keepalived 2.2.7 VRRPv2 advert (shared/testdata/vrrp).
        let bytes = [
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0xce, 0x9d, 0x47, 0xfb, 0x04, 0x8a, 0x08, 0x00,
        ];
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.dst(), [0x01, 0x00, 0x5e, 0, 0, 0x12]);
        assert!(is_multicast(&f.dst()));
        assert_eq!(f.src(), [0xce, 0x9d, 0x47, 0xfb, 0x04, 0x8a]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert!(Frame::new_checked(&bytes[..13]).is_err());
        assert!(same_mac(&bytes[6..], &[0xce, 0x9d, 0x47, 0xfb, 0x04, 0x8a]));
        assert!(!same_mac(
            &bytes[6..],
            &[0xce, 0x9d, 0x47, 0xfb, 0x04, 0x8b]
        ));
        assert!(!same_mac(
            &bytes[6..],
            &[0xcf, 0x9d, 0x47, 0xfb, 0x04, 0x8a]
        ));
    }

    #[test]
    fn mac_text_round_trip() {
        let m = parse_mac("02:00:5E:10:00:ff").unwrap();
        assert_eq!(format_mac(&m), "02:00:5e:10:00:ff");
        assert!(parse_mac("02:00:5e:10:00").is_none());
        assert!(parse_mac("02:00:5e:10:00:ff:01").is_none());
        assert!(parse_mac("zz:00:5e:10:00:ff").is_none());
        assert!(parse_mac("+f:00:5e:10:00:ff").is_none());
    }
}
