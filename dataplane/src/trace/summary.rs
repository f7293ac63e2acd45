//! What a watched packet looked like where a watch matched it: the few header fields a
//! path display needs (addresses, protocol, ports, TCP flags), parsed on the worker for
//! matching packets only and kept in the first hop record ([`super::Detail::Packet`]).
//! Parsing never fails: what cannot be read stays zero.

use std::net::Ipv4Addr;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;

/// The headers of one packet, as far as they could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketSummary {
    /// Ethernet type (after one VLAN tag).
    pub ethertype: u16,
    /// IPv4 source, host order (0 if not IPv4).
    pub src: u32,
    /// IPv4 destination, host order.
    pub dst: u32,
    /// IP protocol.
    pub proto: u8,
    /// IPv4 TTL.
    pub ttl: u8,
    /// TCP/UDP source port, or ICMP type.
    pub sport: u16,
    /// TCP/UDP destination port, or ICMP code.
    pub dport: u16,
    /// TCP flags (FIN 0x01 .. URG 0x20).
    pub tcp_flags: u8,
    /// True when the IPv4 packet is a fragment after the first (no L4 header).
    pub fragment: bool,
    /// Length of the frame (saturated at 65535).
    pub len: u16,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

impl PacketSummary {
    /// Reads what it can of `frame` (from its Ethernet header).
    pub fn parse(frame: &[u8]) -> PacketSummary {
        let mut s = PacketSummary {
            len: u16::try_from(frame.len()).unwrap_or(u16::MAX),
            ..Default::default()
        };
        let Some(mut ethertype) = be16(frame, 12) else {
            return s;
        };
        let mut l3 = 14;
        if ethertype == ETHERTYPE_VLAN {
            let Some(inner) = be16(frame, 16) else {
                return s;
            };
            ethertype = inner;
            l3 = 18;
        }
        s.ethertype = ethertype;
        if ethertype != ETHERTYPE_IPV4 {
            return s;
        }
        let Some(&vihl) = frame.get(l3) else {
            return s;
        };
        let (Some(src), Some(dst), Some(frag)) = (
            be32(frame, l3 + 12),
            be32(frame, l3 + 16),
            be16(frame, l3 + 6),
        ) else {
            return s;
        };
        s.src = src;
        s.dst = dst;
        s.ttl = frame.get(l3 + 8).copied().unwrap_or(0);
        s.proto = frame.get(l3 + 9).copied().unwrap_or(0);
        s.fragment = frag & 0x1fff != 0;
        if s.fragment {
            return s;
        }
        let l4 = l3 + usize::from(vihl & 0x0f) * 4;
        match s.proto {
            6 | 17 => {
                s.sport = be16(frame, l4).unwrap_or(0);
                s.dport = be16(frame, l4 + 2).unwrap_or(0);
                if s.proto == 6 {
                    s.tcp_flags = frame.get(l4 + 13).copied().unwrap_or(0);
                }
            }
            1 => {
                s.sport = u16::from(frame.get(l4).copied().unwrap_or(0));
                s.dport = u16::from(frame.get(l4 + 1).copied().unwrap_or(0));
            }
            _ => {}
        }
        s
    }

    /// One line in tcpdump's manner: `IP 10.0.1.2.40512 > 10.0.2.2.80: TCP [S], length 74`.
    pub fn describe(&self) -> String {
        match self.ethertype {
            ETHERTYPE_IPV4 => {}
            ETHERTYPE_ARP => return format!("ARP, length {}", self.len),
            0 => return format!("truncated frame, length {}", self.len),
            t => return format!("ethertype 0x{t:04x}, length {}", self.len),
        }
        let (src, dst) = (Ipv4Addr::from(self.src), Ipv4Addr::from(self.dst));
        let len = self.len;
        if self.fragment {
            return format!(
                "IP {src} > {dst}: fragment, proto {}, length {len}",
                self.proto
            );
        }
        match self.proto {
            6 => format!(
                "IP {src}.{} > {dst}.{}: TCP [{}], length {len}",
                self.sport,
                self.dport,
                tcp_flags(self.tcp_flags)
            ),
            17 => format!(
                "IP {src}.{} > {dst}.{}: UDP, length {len}",
                self.sport, self.dport
            ),
            1 => format!(
                "IP {src} > {dst}: {}, length {len}",
                icmp(self.sport, self.dport)
            ),
            p => format!("IP {src} > {dst}: proto {p}, length {len}"),
        }
    }
}

/// TCP flags as tcpdump writes them (`S.` for SYN-ACK, `.` for a bare ACK).
fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if f & 0x10 != 0 {
        s.push('.');
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

fn icmp(t: u16, code: u16) -> String {
    match (t, code) {
        (8, _) => "ICMP echo request".into(),
        (0, _) => "ICMP echo reply".into(),
        (3, 4) => "ICMP unreachable - need to frag".into(),
        (3, c) => format!("ICMP unreachable code {c}"),
        (11, _) => "ICMP time exceeded in-transit".into(),
        (t, c) => format!("ICMP type {t} code {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2,
        ];
        ip.extend_from_slice(l4);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn tcp_udp_icmp_arp_and_junk_read_like_tcpdump() {
        let mut tcp = [0u8; 20];
        tcp[..4].copy_from_slice(&[0x9e, 0x40, 0, 80]);
        tcp[13] = 0x12;
        let s = PacketSummary::parse(&ipv4(6, &tcp));
        assert_eq!(
            s.describe(),
            "IP 10.0.1.2.40512 > 10.0.2.2.80: TCP [S.], length 54"
        );
        assert_eq!(s.ttl, 64);
        let u = PacketSummary::parse(&ipv4(17, &[0, 53, 0x13, 0x89, 0, 8, 0, 0]));
        assert_eq!(
            u.describe(),
            "IP 10.0.1.2.53 > 10.0.2.2.5001: UDP, length 42"
        );
        let i = PacketSummary::parse(&ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(
            i.describe(),
            "IP 10.0.1.2 > 10.0.2.2: ICMP echo request, length 42"
        );
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        assert_eq!(PacketSummary::parse(&arp).describe(), "ARP, length 42");
        assert_eq!(
            PacketSummary::parse(&[1, 2, 3]).describe(),
            "truncated frame, length 3"
        );
        // A header cut short: what is there is read, nothing panics.
        let cut = ipv4(6, &[0x9e]);
        let c = PacketSummary::parse(&cut);
        assert_eq!((c.src, c.sport, c.dport), (0x0a00_0102, 0, 0));
        for n in 0..cut.len() {
            let _ = PacketSummary::parse(&cut[..n]).describe();
        }
    }
}
