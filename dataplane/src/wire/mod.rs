//! Header views over packet bytes, smoltcp-style: a view wraps a buffer, `new_checked`
//! validates the length once so no accessor can panic afterwards, setters write in place.
//! Unknown codes are values, not errors. Also the Internet checksum helpers.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod geneve;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

/// A header view could not be created over the given bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A field holds a value that makes the header unusable (e.g. IHL < 5).
    Malformed,
}

/// Reads `N` bytes at `off` as one load (one bounds check, not one per byte).
#[inline(always)]
pub fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

/// Big-endian u16 at `off`.
#[inline(always)]
pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(array(b, off))
}

/// Big-endian u32 at `off`.
#[inline(always)]
pub fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(array(b, off))
}

/// Writes a big-endian u16 at `off`.
#[inline(always)]
pub fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `off`.
#[inline(always)]
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
