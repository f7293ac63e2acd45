//! Hand-built Ethernet frames — valid ones and a catalogue of broken ones, each labelled with
//! the drop reason the dataplane must count for it — and a sender that writes raw frames to an
//! interface through a python3 `AF_PACKET` socket (stdlib only).
//!
//! Frames are built here in Rust (so their bytes are unit-tested); python only moves bytes.
//!
//! Not in the catalogue, because kernel interfaces never deliver them to a DPDK
//! `net_af_packet` port (both checked on this kernel):
//! - a runt frame (shorter than an Ethernet header, `eth_runt`): Linux refuses to send a frame
//!   shorter than 14 bytes through a packet socket (`EINVAL` from `dev_validate_header`);
//! - an IPv4 fragment addressed to the router (`ip4_fragment_to_us`): the PMD joins its
//!   sockets to a fanout group with `PACKET_FANOUT_FLAG_DEFRAG`, so the kernel reassembles
//!   fragments before the PMD sees them and holds a lone fragment until it expires.
//!
//! Both reasons are covered by the dataplane's unit tests on heap buffers.

use std::net::Ipv4Addr;

use crate::error::{LabError, Result};
use crate::lab::Lab;

/// EtherType IPv4.
pub const ETH_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETH_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETH_IPV6: u16 = 0x86dd;
/// EtherType reserved for local experiments (IEEE 802 "local experimental 1").
pub const ETH_EXPERIMENTAL: u16 = 0x88b5;

/// Python3 sender: binds an `AF_PACKET` socket to argv[1] and sends one frame per hex line of
/// stdin; prints the number sent.
pub const SENDER_PY: &str = "\
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
n = 0
for line in sys.stdin:
    line = line.strip()
    if line:
        s.send(bytes.fromhex(line))
        n += 1
print(n)
";

/// Who a frame is from and to.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Sender's MAC.
    pub src_mac: [u8; 6],
    /// Next hop's MAC (the router port).
    pub dst_mac: [u8; 6],
    /// Sender's IP.
    pub src_ip: Ipv4Addr,
    /// Final destination IP (forwarded frames).
    pub dst_ip: Ipv4Addr,
    /// The router's own IP on this link (frames addressed to the router).
    pub router_ip: Ipv4Addr,
}

/// A deliberately broken frame and the drop reason it must produce.
#[derive(Debug, Clone)]
pub struct BadFrame {
    /// What is wrong with it.
    pub what: &'static str,
    /// The drop reason's name (`dataplane/src/graph/drop.rs`).
    pub reason: &'static str,
    /// The frame bytes.
    pub frame: Vec<u8>,
}

/// Parses "02:00:00:00:00:01".
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("MAC {s:?} does not have 6 parts"));
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|e| format!("MAC {s:?}: {e}"))?;
    }
    Ok(mac)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ICMP echo request with a valid checksum.
pub fn icmp_echo(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A valid IPv4 packet (20-byte header, DF clear, checksum set) around `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_with_options(src, dst, ttl, proto, &[], payload)
}

/// A valid IPv4 packet with header `options` (padded to a multiple of 4 by the caller).
pub fn ipv4_with_options(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    proto: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = (hl + payload.len()) as u16;
    let mut p = Vec::with_capacity(total as usize);
    p.push(0x40 | (hl / 4) as u8);
    p.push(0);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&0x4567u16.to_be_bytes()); // identification
    p.extend_from_slice(&[0, 0]); // flags + fragment offset
    p.push(ttl);
    p.push(proto);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    fix_ip_checksum(&mut p);
    p.extend_from_slice(payload);
    p
}

/// Recomputes the header checksum of an IPv4 packet over `IHL * 4` bytes (or what is there).
pub fn fix_ip_checksum(p: &mut [u8]) {
    let hl = (usize::from(p[0] & 0x0f) * 4).min(p.len());
    p[10] = 0;
    p[11] = 0;
    let c = checksum(&p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An ARP packet with explicit type/length fields; `body` is what follows the 8-byte fixed
/// part (addresses).
pub fn arp_raw(htype: u16, ptype: u16, hlen: u8, plen: u8, op: u16, body: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(8 + body.len());
    a.extend_from_slice(&htype.to_be_bytes());
    a.extend_from_slice(&ptype.to_be_bytes());
    a.push(hlen);
    a.push(plen);
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(body);
    a
}

/// A well-formed ARP request for `target` from `mac`/`ip`.
pub fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&mac);
    body.extend_from_slice(&ip.octets());
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(&target.octets());
    arp_raw(1, ETH_IPV4, 6, 4, 1, &body)
}

impl Endpoints {
    /// An echo request from the sender to the final destination with `ttl`, as a frame.
    pub fn echo_frame(&self, ttl: u8, seq: u16) -> Vec<u8> {
        let icmp = icmp_echo(0xae91, seq, b"aegis-lab bad-frame test");
        let ip = ipv4(self.src_ip, self.dst_ip, ttl, 1, &icmp);
        ethernet(self.dst_mac, self.src_mac, ETH_IPV4, &ip)
    }

    /// The catalogue: one frame per way of being broken, each wrong in exactly one respect.
    pub fn bad_frames(&self) -> Vec<BadFrame> {
        let icmp = icmp_echo(0xae92, 1, b"aegis-lab bad-frame test");
        let good_ip = ipv4(self.src_ip, self.dst_ip, 64, 1, &icmp);
        let eth =
            |ethertype, payload: &[u8]| ethernet(self.dst_mac, self.src_mac, ethertype, payload);
        let ip_frame = |edit: &dyn Fn(&mut Vec<u8>), fix_csum: bool| {
            let mut p = good_ip.clone();
            edit(&mut p);
            if fix_csum {
                fix_ip_checksum(&mut p);
            }
            eth(ETH_IPV4, &p)
        };
        // Loose source route through the destination itself, then end-of-options.
        let d = self.dst_ip.octets();
        let lsrr = [0x83, 7, 4, d[0], d[1], d[2], d[3], 0];
        let mut v = vec![
            BadFrame {
                what: "IPv4 ethertype with only 10 bytes of header",
                reason: "ip4_truncated",
                frame: eth(ETH_IPV4, &good_ip[..10]),
            },
            BadFrame {
                what: "version 6 inside an IPv4 ethertype",
                reason: "ip4_bad_version",
                frame: ip_frame(&|p| p[0] = 0x65, true),
            },
            BadFrame {
                what: "IHL 4 (16-byte header)",
                reason: "ip4_bad_ihl",
                frame: ip_frame(&|p| p[0] = 0x44, false),
            },
            BadFrame {
                what: "IHL 15 (60-byte header) in a 52-byte packet",
                reason: "ip4_bad_ihl",
                frame: ip_frame(&|p| p[0] = 0x4f, false),
            },
            BadFrame {
                what: "header checksum off by one",
                reason: "ip4_bad_checksum",
                frame: ip_frame(&|p| p[11] ^= 0x01, false),
            },
            BadFrame {
                what: "total length 200 in a shorter frame",
                reason: "ip4_bad_length",
                frame: ip_frame(&|p| p[2..4].copy_from_slice(&200u16.to_be_bytes()), true),
            },
            BadFrame {
                what: "total length 19 (shorter than the header)",
                reason: "ip4_bad_length",
                frame: ip_frame(&|p| p[2..4].copy_from_slice(&19u16.to_be_bytes()), true),
            },
            BadFrame {
                what: "TTL 1 on a packet to be forwarded",
                reason: "ip4_ttl_expired",
                frame: ip_frame(&|p| p[8] = 1, true),
            },
            BadFrame {
                what: "TTL 0 on a packet to be forwarded",
                reason: "ip4_ttl_expired",
                frame: ip_frame(&|p| p[8] = 0, true),
            },
            BadFrame {
                what: "loose source route option",
                reason: "ip4_source_route",
                frame: eth(
                    ETH_IPV4,
                    &ipv4_with_options(self.src_ip, self.dst_ip, 64, 1, &lsrr, &icmp),
                ),
            },
            BadFrame {
                what: "source address 127.0.0.1",
                reason: "ip4_martian_source",
                frame: ip_frame(&|p| p[12..16].copy_from_slice(&[127, 0, 0, 1]), true),
            },
            BadFrame {
                what: "experimental ethertype 0x88b5",
                reason: "eth_unknown_type",
                frame: eth(ETH_EXPERIMENTAL, &[0u8; 46]),
            },
            BadFrame {
                what: "IPv6 ethertype",
                reason: "eth_unknown_type",
                frame: eth(ETH_IPV6, &[0x60; 40]),
            },
            BadFrame {
                what: "unicast to a MAC that is not the router's",
                reason: "eth_not_for_us",
                frame: ethernet(
                    [0x02, 0xae, 0, 0, 0xbe, 0xef],
                    self.src_mac,
                    ETH_IPV4,
                    &good_ip,
                ),
            },
        ];
        let good_arp = arp_request(self.src_mac, self.src_ip, self.router_ip);
        let arp_body = &good_arp[8..];
        v.extend([
            BadFrame {
                what: "ARP with hardware length 7",
                reason: "arp_malformed",
                frame: eth(
                    ETH_ARP,
                    &arp_raw(1, ETH_IPV4, 7, 4, 1, &[arp_body, &[0, 0]].concat()),
                ),
            },
            BadFrame {
                what: "ARP with protocol length 6",
                reason: "arp_malformed",
                frame: eth(
                    ETH_ARP,
                    &arp_raw(1, ETH_IPV4, 6, 6, 1, &[arp_body, &[0; 4]].concat()),
                ),
            },
            BadFrame {
                what: "ARP cut after 20 of 28 bytes",
                reason: "arp_malformed",
                frame: eth(ETH_ARP, &good_arp[..20]),
            },
            BadFrame {
                what: "ARP opcode 9",
                reason: "arp_unsupported",
                frame: eth(ETH_ARP, &arp_raw(1, ETH_IPV4, 6, 4, 9, arp_body)),
            },
            BadFrame {
                what: "ARP hardware type 6 (IEEE 802)",
                reason: "arp_unsupported",
                frame: eth(ETH_ARP, &arp_raw(6, ETH_IPV4, 6, 4, 1, arp_body)),
            },
        ]);
        v
    }
}

/// Sends `frames` out of `ifname` in `host`, in order. Fails if any could not be sent.
pub fn send(lab: &Lab, host: &str, ifname: &str, frames: &[Vec<u8>]) -> Result<()> {
    let mut input = String::new();
    for f in frames {
        for b in f {
            input.push_str(&format!("{b:02x}"));
        }
        input.push('\n');
    }
    let out = lab.exec_input(
        host,
        "python3",
        &["-c", SENDER_PY, ifname],
        Some(input.as_bytes()),
    )?;
    let line = format!(
        "ip netns exec {} python3 -c <frame sender> {ifname}",
        lab.ns(host)?
    );
    let stdout = crate::cmd::checked(&line, out)?;
    let sent: usize = stdout.trim().parse().map_err(|_| LabError::Parse {
        cmd: line.clone(),
        detail: "expected the number of frames sent".into(),
        output: stdout.clone(),
    })?;
    if sent != frames.len() {
        return Err(LabError::Parse {
            cmd: line,
            detail: format!("sent {sent} of {} frames", frames.len()),
            output: stdout,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 1, 2],
            dst_mac: [2, 0, 0, 0, 1, 1],
            src_ip: Ipv4Addr::new(10, 0, 1, 2),
            dst_ip: Ipv4Addr::new(10, 0, 2, 2),
            router_ip: Ipv4Addr::new(10, 0, 1, 1),
        }
    }

    /// The checks a router makes, in RFC 1812 order; returns the first failure.
    fn ip_verdict(p: &[u8]) -> &'static str {
        if p.len() < 20 {
            return "ip4_truncated";
        }
        if p[0] >> 4 != 4 {
            return "ip4_bad_version";
        }
        let hl = usize::from(p[0] & 0x0f) * 4;
        if hl < 20 || hl > p.len() {
            return "ip4_bad_ihl";
        }
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        if total > p.len() || total < hl {
            return "ip4_bad_length";
        }
        if checksum(&p[..hl]) != 0 {
            return "ip4_bad_checksum";
        }
        "ok"
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3 example bytes: sum 0xddf2, checksum 0x220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // A header with its checksum in place sums to zero.
        let p = ipv4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            64,
            17,
            &[],
        );
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn echo_frame_is_valid() {
        let f = ep().echo_frame(64, 1);
        assert_eq!(&f[12..14], &ETH_IPV4.to_be_bytes());
        assert_eq!(ip_verdict(&f[14..]), "ok");
        assert_eq!(checksum(&f[34..]), 0, "ICMP checksum");
        assert_eq!(f[14 + 8], 64);
    }

    #[test]
    fn each_bad_ipv4_frame_fails_exactly_the_intended_check() {
        for b in ep().bad_frames() {
            let ethertype = u16::from_be_bytes([b.frame[12], b.frame[13]]);
            if ethertype != ETH_IPV4 {
                continue;
            }
            let ip = &b.frame[14..];
            match b.reason {
                "ip4_truncated" | "ip4_bad_version" | "ip4_bad_ihl" | "ip4_bad_length"
                | "ip4_bad_checksum" => assert_eq!(ip_verdict(ip), b.reason, "{}", b.what),
                // These pass every header check; what is wrong is elsewhere.
                _ => assert_eq!(ip_verdict(ip), "ok", "{}", b.what),
            }
            match b.reason {
                "ip4_ttl_expired" => assert!(ip[8] <= 1, "{}", b.what),
                "ip4_source_route" => assert_eq!(ip[20], 0x83),
                "ip4_martian_source" => assert_eq!(ip[12], 127),
                "eth_not_for_us" => assert_ne!(&b.frame[..6], &ep().dst_mac),
                _ => {}
            }
        }
    }

    #[test]
    fn every_frame_can_leave_a_veth() {
        for b in ep().bad_frames() {
            // Linux refuses packet-socket frames shorter than an Ethernet header.
            assert!(b.frame.len() >= 14, "{}", b.what);
            if b.reason != "eth_not_for_us" {
                assert_eq!(&b.frame[..6], &ep().dst_mac, "{}", b.what);
            }
        }
    }

    #[test]
    fn arp_frames_are_broken_as_labelled() {
        let good = arp_request(
            [2, 0, 0, 0, 1, 2],
            Ipv4Addr::new(10, 0, 1, 2),
            Ipv4Addr::new(10, 0, 1, 1),
        );
        assert_eq!(good.len(), 28);
        for b in ep().bad_frames() {
            if u16::from_be_bytes([b.frame[12], b.frame[13]]) != ETH_ARP {
                continue;
            }
            let a = &b.frame[14..];
            let (htype, hlen, plen, op) = (
                u16::from_be_bytes([a[0], a[1]]),
                a[4],
                a[5],
                u16::from_be_bytes([a[6], a[7]]),
            );
            let well_sized = a.len() >= 8 + 2 * (usize::from(hlen) + usize::from(plen));
            match b.reason {
                "arp_malformed" => assert!(hlen != 6 || plen != 4 || a.len() < 28, "{}", b.what),
                "arp_unsupported" => {
                    assert!(well_sized && hlen == 6 && plen == 4, "{}", b.what);
                    assert!(htype != 1 || !(1..=2).contains(&op), "{}", b.what);
                }
                other => panic!("unexpected ARP reason {other}"),
            }
        }
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00:0a:ff:00").is_err());
        assert!(parse_mac("02:00:0a:ff:00:zz").is_err());
    }
}
