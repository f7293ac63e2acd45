//! ICMPv4 (RFC 792): the types and codes the router sends, and a checked view.

use super::{be16, checksum, put16};

/// Echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;

/// Destination-unreachable codes.
pub mod unreach {
    /// Net unreachable (no route).
    pub const NET: u8 = 0;
    /// Host unreachable (neighbour did not answer).
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// ICMP header length.
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP message (header + body).
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`, checking it holds the 8-byte header.
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= HEADER_LEN).then_some(Packet { buf })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    /// True if the checksum over the whole message verifies.
    pub fn verify(&self) -> bool {
        checksum::verify(self.buf.as_ref())
    }
    /// The second header word (identifier/sequence, MTU, ...).
    pub fn rest_of_header(&self) -> u32 {
        super::be32(self.buf.as_ref(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns an echo request into an echo reply in place, patching the checksum.
    pub fn echo_to_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = be16(b, 0);
        b[0] = ECHO_REPLY;
        let new = be16(b, 0);
        let c = checksum::update16(be16(b, 2), old, new);
        put16(b, 2, c);
    }
}

/// True for ICMP types that are errors (never answered with another error, RFC 1122).
pub fn is_error(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 4 | 5 | 11 | 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reply_in_place() {
        let mut m = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c'];
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        assert!(p.verify());
        p.echo_to_reply();
        assert_eq!(p.msg_type(), ECHO_REPLY);
        assert!(p.verify());
        assert!(Packet::new_checked(&m[..7]).is_none());
        assert!(is_error(TIME_EXCEEDED) && !is_error(ECHO_REQUEST));
    }
}
