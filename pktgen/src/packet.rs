//! Ethernet II / IPv4 / UDP frames with valid IPv4 and UDP checksums and TTL 64.
//!
//! Frame sizes count the 4-byte FCS, as Ethernet and DPDK benchmarks do, but the FCS is not
//! stored: a "64-byte" frame is 60 bytes in the pcap and in the mbuf.

use std::net::Ipv4Addr;

use crate::net::MacAddr;

/// Bytes of Ethernet FCS counted in a frame size but not stored.
pub const FCS_LEN: usize = 4;
/// Ethernet (14) + IPv4 (20) + UDP (8) header bytes.
pub const HEADERS_LEN: usize = 14 + 20 + 8;
/// Smallest Ethernet frame, FCS included.
pub const MIN_FRAME: usize = 64;
/// Largest untagged Ethernet frame for a 1500-byte MTU, FCS included.
pub const MAX_FRAME: usize = 1518;
/// TTL of every generated packet.
pub const TTL: u8 = 64;

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_UDP: u8 = 17;

/// The addresses and ports that make one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// Whether `frame_size` (FCS included) can hold the headers and fits a 1500-byte MTU.
pub fn frame_size_ok(frame_size: usize) -> bool {
    (MIN_FRAME..=MAX_FRAME).contains(&frame_size)
}

/// Writes the frame for `flow` into `out` (cleared first): `frame_size - FCS_LEN` bytes,
/// IPv4 identification `ip_id`, a zero payload. `frame_size` must satisfy
/// [`frame_size_ok`].
pub fn build_frame(flow: &Flow, frame_size: usize, ip_id: u16, out: &mut Vec<u8>) {
    assert!(frame_size_ok(frame_size), "frame size {frame_size}");
    let len = frame_size - FCS_LEN;
    let ip_len = (len - 14) as u16;
    let udp_len = ip_len - 20;
    out.clear();
    out.resize(len, 0);

    // Ethernet.
    out[0..6].copy_from_slice(&flow.dst_mac.0);
    out[6..12].copy_from_slice(&flow.src_mac.0);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    // IPv4, no options, don't-fragment clear.
    let ip = &mut out[14..34];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0, 0]);
    ip[8] = TTL;
    ip[9] = PROTO_UDP;
    ip[12..16].copy_from_slice(&flow.src_ip.octets());
    ip[16..20].copy_from_slice(&flow.dst_ip.octets());
    let sum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    // UDP.
    let udp = &mut out[34..];
    udp[0..2].copy_from_slice(&flow.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&flow.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let sum = udp_checksum(flow.src_ip, flow.dst_ip, udp);
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// The checksum to store in an IPv4 header (its checksum field is treated as zero).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for (i, pair) in header.chunks(2).enumerate() {
        if i == 5 {
            continue; // the checksum field itself
        }
        sum += word(pair);
    }
    !fold(sum)
}

/// The checksum to store in a UDP header over IPv4 (its checksum field treated as zero);
/// a computed 0 is sent as 0xffff, as RFC 768 requires.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut sum = pseudo_header_sum(src, dst, udp.len());
    for (i, pair) in udp.chunks(2).enumerate() {
        if i == 3 {
            continue; // the checksum field itself
        }
        sum += word(pair);
    }
    match !fold(sum) {
        0 => 0xffff,
        s => s,
    }
}

/// One's-complement sum of `bytes` folded to 16 bits, for verification: a header with a
/// correct checksum sums to 0xffff.
pub fn ones_complement_sum(bytes: &[u8]) -> u16 {
    fold(bytes.chunks(2).map(word).sum())
}

/// The UDP pseudo-header's contribution to the checksum.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    let (s, d) = (src.octets(), dst.octets());
    word(&s[0..2])
        + word(&s[2..4])
        + word(&d[0..2])
        + word(&d[2..4])
        + u32::from(PROTO_UDP)
        + udp_len as u32
}

fn word(pair: &[u8]) -> u32 {
    let hi = u32::from(pair[0]) << 8;
    hi | pair.get(1).map_or(0, |&b| u32::from(b))
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(10, 1, 2, 3),
            src_port: 1234,
            dst_port: 5678,
        }
    }

    #[test]
    fn known_ipv4_checksum() {
        // A header from RFC 1071-style examples: 192.168.0.1 -> 192.168.0.199, UDP, TTL 64.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }

    #[test]
    fn sixty_four_byte_frame_is_valid() {
        let mut out = Vec::new();
        build_frame(&flow(), 64, 0x1234, &mut out);
        assert_eq!(out.len(), 60);
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 2], "dst mac first");
        assert_eq!(&out[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        let ip = &out[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 46);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 0x1234);
        assert_eq!((ip[8], ip[9]), (64, 17));
        assert_eq!(ones_complement_sum(ip), 0xffff, "IPv4 checksum verifies");
        assert_eq!(&ip[16..20], &[10, 1, 2, 3]);
        let udp = &out[34..];
        assert_eq!(udp.len(), 26);
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 1234);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 5678);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 26);
        let total = fold(
            pseudo_header_sum(flow().src_ip, flow().dst_ip, udp.len())
                + u32::from(ones_complement_sum(udp)),
        );
        assert_eq!(total, 0xffff, "UDP checksum verifies");
    }

    #[test]
    fn odd_and_large_frames_verify() {
        let mut out = Vec::new();
        for size in [65, 127, 1000, 1518] {
            build_frame(&flow(), size, 7, &mut out);
            assert_eq!(out.len(), size - 4);
            assert_eq!(ones_complement_sum(&out[14..34]), 0xffff);
            let udp = &out[34..];
            let total = fold(
                pseudo_header_sum(flow().src_ip, flow().dst_ip, udp.len())
                    + u32::from(ones_complement_sum(udp)),
            );
            assert_eq!(total, 0xffff, "size {size}");
        }
        assert!(!frame_size_ok(63) && !frame_size_ok(1519));
    }
}
