//! Probe packets: the frame a VM would send (Ethernet, IPv4 with DF, ICMP echo / TCP SYN /
//! UDP), with the probe mark and the trace id at the start of the L4 payload.
//!
//! The mark lets every dataplane tell a probe from VM traffic without trusting anything a
//! VM controls: `vm-input` drops a VM-sent packet that carries it (`trace_forged`), so only
//! the dataplane itself can put a marked packet on the overlay.

use std::net::Ipv4Addr;

use crate::state::Mac;
use crate::wire::{checksum, ipv4, put16};

/// The first bytes of a probe's L4 payload.
pub const MARK: [u8; 8] = *b"AEGIStrc";
/// Bytes of mark and trace id.
pub const MARK_LEN: usize = MARK.len() + 8;
/// Default IPv4 total length of a probe.
pub const DEFAULT_SIZE: u16 = 64;
/// Largest IPv4 total length of a probe.
pub const MAX_SIZE: u16 = 9000;

/// The L4 protocol of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeProto {
    /// ICMP echo request (identifier and sequence from the trace id).
    Icmp,
    /// TCP SYN.
    Tcp,
    /// UDP.
    Udp,
}

/// What a probe looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Trace id (written after the mark).
    pub id: u64,
    /// Source MAC (the VM's).
    pub src_mac: Mac,
    /// Destination MAC (the router's, or the destination port's on the same subnet).
    pub dst_mac: Mac,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: ProbeProto,
    /// Source port (TCP/UDP).
    pub sport: u16,
    /// Destination port (TCP/UDP).
    pub dport: u16,
    /// IPv4 TTL.
    pub ttl: u8,
    /// IPv4 total length (at least the headers and the mark).
    pub size: u16,
}

/// Why a probe cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The size cannot hold the headers and the mark, or exceeds [`MAX_SIZE`].
    #[error("probe size {size} is outside {min}..={max} bytes of IPv4")]
    Size {
        /// Asked size.
        size: u16,
        /// Smallest size for the protocol.
        min: u16,
        /// [`MAX_SIZE`].
        max: u16,
    },
    /// TTL 0 is never sent.
    #[error("probe TTL must be at least 1")]
    Ttl,
}

impl ProbeProto {
    fn number(self) -> u8 {
        match self {
            ProbeProto::Icmp => ipv4::PROTO_ICMP,
            ProbeProto::Tcp => ipv4::PROTO_TCP,
            ProbeProto::Udp => ipv4::PROTO_UDP,
        }
    }

    fn header_len(self) -> usize {
        match self {
            ProbeProto::Icmp | ProbeProto::Udp => 8,
            ProbeProto::Tcp => 20,
        }
    }

    /// Smallest IPv4 total length of a probe of this protocol.
    pub fn min_size(self) -> u16 {
        (ipv4::MIN_HEADER_LEN + self.header_len() + MARK_LEN) as u16
    }
}

/// Builds the probe frame.
pub fn build(spec: &ProbeSpec) -> Result<Vec<u8>, ProbeError> {
    let min = spec.proto.min_size();
    if spec.size < min || spec.size > MAX_SIZE {
        return Err(ProbeError::Size {
            size: spec.size,
            min,
            max: MAX_SIZE,
        });
    }
    if spec.ttl == 0 {
        return Err(ProbeError::Ttl);
    }
    let l3 = crate::wire::ethernet::HEADER_LEN;
    let l4 = l3 + ipv4::MIN_HEADER_LEN;
    let mut f = vec![0u8; l3 + usize::from(spec.size)];
    f[0..6].copy_from_slice(&spec.dst_mac);
    f[6..12].copy_from_slice(&spec.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let (src, dst) = (u32::from(spec.src), u32::from(spec.dst));
    let ident = spec.id as u16;
    ipv4::emit_header(
        &mut f[l3..l4],
        spec.size,
        ident,
        spec.ttl,
        spec.proto.number(),
        src,
        dst,
    );
    // Don't fragment, as a VM's stack sets it (path MTU discovery).
    put16(&mut f[l3..], 6, 0x4000);
    put16(&mut f[l3..], 10, 0);
    let c = checksum::checksum(&f[l3..l4]);
    put16(&mut f[l3..], 10, c);
    let payload = l4 + spec.proto.header_len();
    f[payload..payload + MARK.len()].copy_from_slice(&MARK);
    f[payload + MARK.len()..payload + MARK_LEN].copy_from_slice(&spec.id.to_be_bytes());
    let seg = &mut f[l4..];
    match spec.proto {
        ProbeProto::Icmp => {
            seg[0] = crate::wire::icmp::ECHO_REQUEST;
            put16(seg, 4, (spec.id >> 16) as u16);
            put16(seg, 6, spec.id as u16);
            let c = checksum::checksum(seg);
            put16(seg, 2, c);
        }
        ProbeProto::Tcp => {
            put16(seg, 0, spec.sport);
            put16(seg, 2, spec.dport);
            seg[4..8].copy_from_slice(&(spec.id as u32).to_be_bytes());
            seg[12] = 5 << 4;
            seg[13] = 0x02; // SYN
            put16(seg, 14, 64240);
            let c = l4_checksum(src, dst, ipv4::PROTO_TCP, seg);
            put16(seg, 16, c);
        }
        ProbeProto::Udp => {
            let len = seg.len() as u16;
            put16(seg, 0, spec.sport);
            put16(seg, 2, spec.dport);
            put16(seg, 4, len);
            let c = match l4_checksum(src, dst, ipv4::PROTO_UDP, seg) {
                0 => 0xffff,
                c => c,
            };
            put16(seg, 6, c);
        }
    }
    Ok(f)
}

/// The TCP/UDP checksum of `seg` (checksum field zero) with its pseudo-header.
fn l4_checksum(src: u32, dst: u32, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.to_be_bytes());
    pseudo[4..8].copy_from_slice(&dst.to_be_bytes());
    pseudo[9] = proto;
    pseudo[10..12].copy_from_slice(&(seg.len() as u16).to_be_bytes());
    !checksum::fold(checksum::sum(seg, checksum::sum(&pseudo, 0)))
}

/// The trace id of a probe if the IPv4 packet at `l3` of `frame` (header already
/// validated) carries the probe mark, else `None`. Fragments other than the first and
/// unknown protocols never do.
#[inline]
pub fn marked(frame: &[u8], l3: usize) -> Option<u64> {
    let ip = frame.get(l3..)?;
    if ip.len() < ipv4::MIN_HEADER_LEN {
        return None;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if crate::wire::be16(ip, 6) & 0x1fff != 0 {
        return None;
    }
    let seg = ip.get(hl..)?;
    let off = match ip[9] {
        ipv4::PROTO_ICMP | ipv4::PROTO_UDP => 8,
        ipv4::PROTO_TCP => usize::from(seg.get(12)? >> 4) * 4,
        _ => return None,
    };
    let m = seg.get(off..off + MARK_LEN)?;
    let (mark, id) = m.split_at(MARK.len());
    (mark == MARK).then(|| u64::from_be_bytes(id.try_into().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(proto: ProbeProto, size: u16) -> ProbeSpec {
        ProbeSpec {
            id: 0x8000_0000_0000_1234,
            src_mac: [2, 0, 0, 0, 1, 1],
            dst_mac: crate::overlay::ROUTER_MAC,
            src: Ipv4Addr::new(10, 1, 1, 11),
            dst: Ipv4Addr::new(10, 1, 2, 13),
            proto,
            sport: 40000,
            dport: 80,
            ttl: 64,
            size,
        }
    }

    #[test]
    fn probes_are_valid_ipv4_with_the_mark() {
        for proto in [ProbeProto::Icmp, ProbeProto::Tcp, ProbeProto::Udp] {
            for size in [proto.min_size(), 64, 1400] {
                let f = build(&spec(proto, size)).unwrap();
                assert_eq!(f.len(), 14 + usize::from(size));
                let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
                assert!(ip.dont_frag());
                assert_eq!(ip.ttl(), 64);
                assert_eq!(marked(&f, 14), Some(0x8000_0000_0000_1234));
                // The L4 checksum verifies with its pseudo-header.
                let seg = &f[34..];
                let ok = match proto {
                    ProbeProto::Icmp => checksum::verify(seg),
                    _ => {
                        let mut pseudo = [0u8; 12];
                        pseudo[0..4].copy_from_slice(&[10, 1, 1, 11]);
                        pseudo[4..8].copy_from_slice(&[10, 1, 2, 13]);
                        pseudo[9] = proto.number();
                        pseudo[10..12].copy_from_slice(&(seg.len() as u16).to_be_bytes());
                        checksum::fold(checksum::sum(seg, checksum::sum(&pseudo, 0))) == 0xffff
                    }
                };
                assert!(ok, "{proto:?} {size}");
            }
        }
    }

    #[test]
    fn bad_sizes_and_ttl_are_refused() {
        assert!(matches!(
            build(&spec(ProbeProto::Tcp, 40)),
            Err(ProbeError::Size { min: 56, .. })
        ));
        assert!(build(&spec(ProbeProto::Udp, MAX_SIZE + 1)).is_err());
        let mut s = spec(ProbeProto::Icmp, 64);
        s.ttl = 0;
        assert_eq!(build(&s), Err(ProbeError::Ttl));
    }

    #[test]
    fn unmarked_and_truncated_packets_are_not_probes() {
        let mut f = build(&spec(ProbeProto::Udp, 64)).unwrap();
        f[42] ^= 1;
        assert_eq!(marked(&f, 14), None);
        let f = build(&spec(ProbeProto::Udp, 64)).unwrap();
        for n in 0..14 + 44 {
            assert_eq!(marked(&f[..n], 14), None, "{n}");
        }
        // A later fragment is never read as a probe.
        let mut f = build(&spec(ProbeProto::Icmp, 64)).unwrap();
        put16(&mut f[14..], 6, 0x0010);
        assert_eq!(marked(&f, 14), None);
    }
}
