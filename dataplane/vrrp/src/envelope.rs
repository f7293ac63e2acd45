//! The frame around an advertisement: Ethernet and IPv4 as RFC 3768/5798 and keepalived
//! send them (TOS 0xc0, TTL 255, protocol 112, to 224.0.0.18 or a unicast peer), the
//! virtual MAC, and gratuitous ARP for a virtual address.

use std::net::Ipv4Addr;

use crate::wire::{self, Packet, Repr, PROTOCOL};

/// The IPv4 multicast group of VRRP.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// TTL every advertisement is sent with, and must arrive with.
pub const TTL: u8 = 255;
/// TOS keepalived sets (DSCP CS6, network control).
pub const TOS: u8 = 0xc0;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Why a frame is not a VRRP advertisement we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the Ethernet and IPv4 headers it announces.
    #[error("truncated frame ({0} bytes)")]
    Truncated(usize),
    /// Not IPv4 (an EtherType other than 0x0800, or IP version ≠ 4).
    #[error("not an IPv4 frame")]
    NotIpv4,
    /// An IPv4 header checksum that does not verify.
    #[error("bad IPv4 header checksum")]
    Ipv4Checksum,
    /// IP protocol other than 112.
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    /// RFC 3768 §7.1 / RFC 5798 §7.1: an advertisement whose TTL is not 255 may come from
    /// off-link and must be discarded.
    #[error("TTL {0}: VRRP requires 255")]
    Ttl(u8),
    /// A fragment (VRRP messages are never fragmented).
    #[error("fragmented IPv4 packet")]
    Fragment,
    /// The VRRP message itself.
    #[error(transparent)]
    Vrrp(#[from] wire::Error),
}

/// An accepted advertisement with the addresses it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// IPv4 source (the sender's primary address: the tie-break at equal priority).
    pub src: Ipv4Addr,
    /// IPv4 destination (the group or our unicast address).
    pub dst: Ipv4Addr,
    /// The advertisement.
    pub repr: Repr,
}

/// The virtual MAC of `vrid` for IPv4 (00-00-5E-00-01-VRID).
pub fn virtual_mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
}

/// The Ethernet multicast address of an IPv4 group (01-00-5E + the low 23 bits).
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// The IPv4 header checksum of `h` (its checksum field taken as 0).
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, pair) in h.chunks(2).enumerate() {
        if i != 5 {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses a whole Ethernet frame as a VRRP advertisement: IPv4 with a valid header
/// checksum, not fragmented, protocol 112, TTL 255, then the VRRP message (checksum
/// included). Trailing Ethernet padding is ignored.
pub fn parse_frame(frame: &[u8]) -> Result<Received, FrameError> {
    if frame.len() < ETH_LEN + IPV4_LEN {
        return Err(FrameError::Truncated(frame.len()));
    }
    if u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return Err(FrameError::NotIpv4);
    }
    let ip = &frame[ETH_LEN..];
    if ip[0] >> 4 != 4 {
        return Err(FrameError::NotIpv4);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < IPV4_LEN || total < ihl || ip.len() < total {
        return Err(FrameError::Truncated(frame.len()));
    }
    if ipv4_checksum(&ip[..ihl]) != u16::from_be_bytes([ip[10], ip[11]]) {
        return Err(FrameError::Ipv4Checksum);
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(FrameError::Fragment);
    }
    if ip[9] != PROTOCOL {
        return Err(FrameError::NotVrrp(ip[9]));
    }
    if ip[8] != TTL {
        return Err(FrameError::Ttl(ip[8]));
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let p = Packet::new_checked(&ip[ihl..total])?;
    let repr = Repr::parse(&p, src, dst)?;
    let mut src_mac = [0; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Ok(Received {
        src_mac,
        src,
        dst,
        repr,
    })
}

/// Builds the Ethernet frame of an advertisement from `src` (MAC `src_mac`: the
/// interface's, or [`virtual_mac`] with `use_vmac`) to `dst` (the [`GROUP`], whose MAC is
/// derived, or a unicast peer with its MAC `dst_mac`), with IPv4 identification `ident`.
pub fn emit_frame(
    repr: &Repr,
    src_mac: [u8; 6],
    dst_mac: Option<[u8; 6]>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
) -> Result<Vec<u8>, wire::Error> {
    let vrrp_len = repr.buffer_len();
    let total = IPV4_LEN + vrrp_len;
    let mut f = vec![0u8; ETH_LEN + total];
    let dst_mac = dst_mac.unwrap_or_else(|| multicast_mac(dst));
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut f[ETH_LEN..];
    ip[0] = 0x45;
    ip[1] = TOS;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip[8] = TTL;
    ip[9] = PROTOCOL;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = ipv4_checksum(&ip[..IPV4_LEN]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    repr.emit(&mut ip[IPV4_LEN..], src, dst)?;
    Ok(f)
}

/// A gratuitous ARP request for `vip` from `mac` (sender and target address both `vip`,
/// to the broadcast address), as a new master sends for each virtual address. 42 bytes:
/// the port pads it to the Ethernet minimum.
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&vip.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(virtual_mac(77), [0, 0, 0x5e, 0, 1, 77]);
        assert_eq!(multicast_mac(GROUP), [0x01, 0, 0x5e, 0, 0, 0x12]);
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 200, 1, 2)),
            [0x01, 0, 0x5e, 0x48, 1, 2]
        );
    }

    #[test]
    fn gratuitous_arp_layout() {
        let mac = [2, 0, 0, 0, 0, 9];
        let vip = Ipv4Addr::new(10, 77, 0, 100);
        let f = gratuitous_arp(mac, vip);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &vip.octets());
        assert_eq!(&f[38..42], &vip.octets());
    }
}
