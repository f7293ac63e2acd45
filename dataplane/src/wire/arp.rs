//! ARP for Ethernet/IPv4 (RFC 826): a checked view and a builder for requests and replies.

use super::{be16, be32, put16, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// Why an ARP packet cannot be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than the header, or hardware/protocol lengths other than 6/4.
    Malformed,
    /// Hardware type not Ethernet or protocol not IPv4.
    Unsupported,
}

/// A view of an Ethernet/IPv4 ARP packet.
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`, checking length, hardware/protocol types and address lengths.
    pub fn new_checked(buf: T) -> Result<Self, ArpError> {
        let b = buf.as_ref();
        if b.len() < 8 {
            return Err(ArpError::Malformed);
        }
        if b[field::HLEN] != 6 || b[field::PLEN] != 4 || b.len() < PACKET_LEN {
            return Err(ArpError::Malformed);
        }
        if be16(b, field::HTYPE) != 1 || be16(b, field::PTYPE) != 0x0800 {
            return Err(ArpError::Unsupported);
        }
        Ok(Packet { buf })
    }
    /// Opcode (1 request, 2 reply, others are values too).
    pub fn operation(&self) -> u16 {
        be16(self.buf.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        self.buf.as_ref()[field::SHA..field::SHA + 6]
            .try_into()
            .unwrap_or_default()
    }
    /// Sender protocol address (host order).
    pub fn sender_ip(&self) -> u32 {
        be32(self.buf.as_ref(), field::SPA)
    }
    /// Target protocol address (host order).
    pub fn target_ip(&self) -> u32 {
        be32(self.buf.as_ref(), field::TPA)
    }
}

/// Writes an Ethernet/IPv4 ARP packet (28 bytes) into `out[..28]`.
pub fn emit(out: &mut [u8], op: u16, sha: [u8; 6], spa: u32, tha: [u8; 6], tpa: u32) {
    put16(out, field::HTYPE, 1);
    put16(out, field::PTYPE, 0x0800);
    out[field::HLEN] = 6;
    out[field::PLEN] = 4;
    put16(out, field::OPER, op);
    out[field::SHA..field::SHA + 6].copy_from_slice(&sha);
    out[field::SPA..field::SPA + 4].copy_from_slice(&spa.to_be_bytes());
    out[field::THA..field::THA + 6].copy_from_slice(&tha);
    out[field::TPA..field::TPA + 4].copy_from_slice(&tpa.to_be_bytes());
}

/// Builds a whole Ethernet frame carrying an ARP request for `target` (broadcast).
pub fn request_frame(src_mac: [u8; 6], src_ip: u32, target: u32) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&super::ethernet::BROADCAST);
    f[6..12].copy_from_slice(&src_mac);
    put16(&mut f, 12, super::ethernet::ETHERTYPE_ARP);
    emit(&mut f[14..], OP_REQUEST, src_mac, src_ip, [0; 6], target);
    f
}

impl From<ArpError> for WireError {
    fn from(e: ArpError) -> Self {
        match e {
            ArpError::Malformed => WireError::Truncated,
            ArpError::Unsupported => WireError::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ARP request as Linux sends it: who-has 10.0.1.1 tell 10.0.1.2.
    const REQ: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0,
        1, 2, 0, 0, 0, 0, 0, 0, 10, 0, 1, 1,
    ];

    #[test]
    fn parses_request() {
        let p = Packet::new_checked(&REQ[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(p.sender_ip(), 0x0a00_0102);
        assert_eq!(p.target_ip(), 0x0a00_0101);
    }

    #[test]
    fn rejects_odd_lengths_and_types() {
        let mut b = REQ;
        b[4] = 8;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(ArpError::Malformed));
        assert_eq!(
            Packet::new_checked(&REQ[..20]).err(),
            Some(ArpError::Malformed)
        );
        let mut b = REQ;
        b[1] = 6;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(ArpError::Unsupported)
        );
    }

    #[test]
    fn request_frame_round_trips() {
        let f = request_frame([2, 0, 0, 0, 0, 1], 0x0a000101, 0x0a000102);
        let p = Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.target_ip(), 0x0a000102);
        assert_eq!(p.sender_ip(), 0x0a000101);
    }
}
