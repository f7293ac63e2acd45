//! Rewriting packets in place for NAT: addresses and ports with incremental checksum
//! updates (RFC 1624) of the IPv4 header and of the TCP/UDP checksum (its pseudo-header
//! covers the addresses) or the ICMP echo identifier, and ICMP errors whose embedded packet
//! must be translated back as well. Every function takes the IPv4 packet (from its header
//! on) and is safe on any bytes: what it cannot translate it reports, and leaves untouched.

use crate::wire::checksum::{self, apply_delta, delta16, delta32, update16};

/// IP protocol numbers.
const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Why a packet cannot be translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untranslatable {
    /// Shorter than its headers.
    Truncated,
    /// A fragment after the first (no ports to look at).
    Fragment,
    /// A protocol NAT does not handle.
    Protocol,
}

/// The 5-tuple of an IPv4 packet: protocol, addresses and ports (ICMP echo: the identifier
/// as both ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// IP protocol.
    pub proto: u8,
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port (echo id).
    pub sport: u16,
    /// Destination port (echo id).
    pub dport: u16,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn ihl(ip: &[u8]) -> Result<usize, Untranslatable> {
    if ip.len() < 20 {
        return Err(Untranslatable::Truncated);
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if hl < 20 || ip.len() < hl {
        return Err(Untranslatable::Truncated);
    }
    Ok(hl)
}

/// What an ICMP message is, for NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// Echo request or reply: translated by its identifier.
    Echo,
    /// An error carrying the packet that caused it (destination unreachable, time
    /// exceeded, parameter problem).
    Error,
    /// Anything else (not translated).
    Other,
}

/// Classifies an ICMP type.
pub fn icmp_kind(t: u8) -> IcmpKind {
    match t {
        0 | 8 => IcmpKind::Echo,
        3 | 11 | 12 => IcmpKind::Error,
        _ => IcmpKind::Other,
    }
}

/// The tuple of `ip`. ICMP echo uses its identifier as both ports; an ICMP error is
/// reported as [`Untranslatable::Protocol`] here (see [`inner_tuple`]).
#[inline(always)]
pub fn tuple(ip: &[u8]) -> Result<Tuple, Untranslatable> {
    let hl = ihl(ip)?;
    if be16(ip, 6) & 0x1fff != 0 {
        return Err(Untranslatable::Fragment);
    }
    let proto = ip[9];
    let l4 = &ip[hl..];
    let (sport, dport) = match proto {
        TCP | UDP if l4.len() >= 8 => (be16(l4, 0), be16(l4, 2)),
        ICMP if l4.len() >= 8 && icmp_kind(l4[0]) == IcmpKind::Echo => (be16(l4, 4), be16(l4, 4)),
        TCP | UDP | ICMP if l4.len() < 8 => return Err(Untranslatable::Truncated),
        _ => return Err(Untranslatable::Protocol),
    };
    Ok(Tuple {
        proto,
        src: be32(ip, 12),
        dst: be32(ip, 16),
        sport,
        dport,
    })
}

/// For an ICMP error: the tuple of the packet it carries (as that packet was sent).
pub fn inner_tuple(ip: &[u8]) -> Result<Tuple, Untranslatable> {
    let hl = ihl(ip)?;
    let icmp = &ip[hl..];
    if icmp.len() < 8 + 20 || ip[9] != ICMP || icmp_kind(icmp[0]) != IcmpKind::Error {
        return Err(Untranslatable::Protocol);
    }
    let inner = &icmp[8..];
    let ihl2 = ihl(inner)?;
    if inner.len() < ihl2 + 8 {
        return Err(Untranslatable::Truncated);
    }
    let proto = inner[9];
    let l4 = &inner[ihl2..];
    let (sport, dport) = match proto {
        TCP | UDP => (be16(l4, 0), be16(l4, 2)),
        ICMP if icmp_kind(l4[0]) == IcmpKind::Echo => (be16(l4, 4), be16(l4, 4)),
        _ => return Err(Untranslatable::Protocol),
    };
    Ok(Tuple {
        proto,
        src: be32(inner, 12),
        dst: be32(inner, 16),
        sport,
        dport,
    })
}

/// Replaces a 32-bit address at `at` and folds the change into the checksums at
/// `ip_csum` and (if given) `l4_csum`.
fn set_addr(b: &mut [u8], at: usize, new: u32, ip_csum: usize, l4_csum: Option<usize>) {
    let old = be32(b, at);
    if old == new {
        return;
    }
    let delta = delta32(old, new);
    put16(b, ip_csum, apply_delta(be16(b, ip_csum), delta));
    if let Some(at4) = l4_csum {
        put16(b, at4, apply_delta(be16(b, at4), delta));
    }
    b[at..at + 4].copy_from_slice(&new.to_be_bytes());
}

/// Where a transport checksum is and whether it may be skipped (UDP's 0: none computed).
fn l4_checksum_at(proto: u8, hl: usize, b: &[u8]) -> Option<usize> {
    match proto {
        TCP => Some(hl + 16).filter(|&at| b.len() >= at + 2),
        UDP => Some(hl + 6).filter(|&at| be16(b, at) != 0),
        _ => None,
    }
}

/// Rewrites the source (`src` = true) or destination address and port of `ip`, whose
/// tuple is `t` (from [`tuple`]). Each checksum is read once, updated in a register for the
/// address and the port together, and written once (a write then a re-read of the same
/// bytes stalls the store buffer). Lengths are checked again here, so a tuple of some other
/// packet cannot make it index out of bounds: it fails with [`Untranslatable::Truncated`].
#[inline(always)]
fn rewrite_parsed(
    ip: &mut [u8],
    t: &Tuple,
    src: bool,
    addr: u32,
    port: u16,
) -> Result<(), Untranslatable> {
    let hl = ihl(ip)?;
    if ip.len() < hl + 8 {
        return Err(Untranslatable::Truncated);
    }
    let (addr_at, old_addr, old_port) = if src {
        (12, t.src, t.sport)
    } else {
        (16, t.dst, t.dport)
    };
    let new_addr = old_addr != addr;
    let new_port = old_port != port;
    // The address change as one checksum addend (both halves), folded once per checksum.
    let addr_delta = if new_addr { delta32(old_addr, addr) } else { 0 };
    match t.proto {
        TCP | UDP => {
            if let Some(at) = l4_checksum_at(t.proto, hl, ip) {
                let port_delta = if new_port { delta16(old_port, port) } else { 0 };
                let mut c = apply_delta(be16(ip, at), addr_delta + port_delta);
                if t.proto == UDP && c == 0 {
                    // A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
                    c = 0xffff;
                }
                put16(ip, at, c);
            }
            if new_port {
                put16(ip, hl + if src { 0 } else { 2 }, port);
            }
        }
        ICMP => {
            // Echo: the identifier is not in a pseudo-header; ICMP's checksum covers it.
            if new_port {
                let c = update16(be16(ip, hl + 2), old_port, port);
                put16(ip, hl + 2, c);
                put16(ip, hl + 4, port);
            }
        }
        _ => return Err(Untranslatable::Protocol),
    }
    if new_addr {
        let c = apply_delta(be16(ip, 10), addr_delta);
        put16(ip, 10, c);
        ip[addr_at..addr_at + 4].copy_from_slice(&addr.to_be_bytes());
    }
    Ok(())
}

/// Source NAT: the packet leaves from `addr:port`.
pub fn set_source(ip: &mut [u8], addr: u32, port: u16) -> Result<(), Untranslatable> {
    let t = tuple(ip)?;
    rewrite_parsed(ip, &t, true, addr, port)
}

/// [`set_source`] of a packet whose tuple the caller already has.
#[inline(always)]
pub fn set_source_parsed(
    ip: &mut [u8],
    t: &Tuple,
    addr: u32,
    port: u16,
) -> Result<(), Untranslatable> {
    rewrite_parsed(ip, t, true, addr, port)
}

/// Destination NAT: the packet goes to `addr:port`.
pub fn set_destination(ip: &mut [u8], addr: u32, port: u16) -> Result<(), Untranslatable> {
    let t = tuple(ip)?;
    rewrite_parsed(ip, &t, false, addr, port)
}

/// [`set_destination`] of a packet whose tuple the caller already has.
#[inline(always)]
pub fn set_destination_parsed(
    ip: &mut [u8],
    t: &Tuple,
    addr: u32,
    port: u16,
) -> Result<(), Untranslatable> {
    rewrite_parsed(ip, t, false, addr, port)
}

/// An ICMP error coming back through the NAT towards the inside: the outer destination
/// becomes `addr`, and the embedded packet (which left with source `outside`) gets the
/// inside source `addr:port` back, so the VM's stack matches it to its socket. The ICMP
/// checksum is recomputed over the whole message (errors are small).
pub fn icmp_error_to_inside(ip: &mut [u8], addr: u32, port: u16) -> Result<(), Untranslatable> {
    inner_tuple(ip)?;
    let hl = ihl(ip)?;
    set_addr(ip, 16, addr, 10, None);
    let inner_at = hl + 8;
    let inner = &mut ip[inner_at..];
    let ihl2 = ihl(inner)?;
    let proto = inner[9];
    // The embedded transport checksum: UDP's is in the 8 bytes carried; TCP's is not.
    let l4c = match proto {
        UDP if be16(inner, ihl2 + 6) != 0 => Some(ihl2 + 6),
        _ => None,
    };
    set_addr(inner, 12, addr, 10, l4c);
    match proto {
        TCP | UDP => {
            let old = be16(inner, ihl2);
            put16(inner, ihl2, port);
            if let Some(c) = l4c {
                let v = update16(be16(inner, c), old, port);
                put16(inner, c, v);
            }
        }
        ICMP => {
            put16(inner, ihl2 + 4, port);
        }
        _ => return Err(Untranslatable::Protocol),
    }
    let icmp = &mut ip[hl..];
    icmp[2] = 0;
    icmp[3] = 0;
    let c = checksum::checksum(icmp);
    put16(icmp, 2, c);
    Ok(())
}
