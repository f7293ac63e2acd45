//! One line per captured packet, like tcpdump's: time, interface, where it was seen (rx,
//! tx, the drop reason, or a graph node with the packet's rx port), and what the packet is (Ethernet/VLAN, ARP, IPv4 with ICMP,
//! TCP or UDP), decoded from the captured bytes only; for `-o json` the same as an object.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use aegis_api::dataplane::v1 as pb;
use serde::Serialize;

/// One packet as `-o json` prints it (one object per line).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PacketView {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// `HOST/PORT`, `HOST/drop` or `HOST/node:NAME`.
    pub interface: String,
    /// `rx`, `tx`, `drop` or `node`.
    pub point: &'static str,
    /// The drop reason (drops only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
    /// The graph node (node points only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The port the packet came in on (node points, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_port: Option<String>,
    /// Length of the packet.
    pub length: u32,
    /// Bytes captured.
    pub captured: usize,
    /// Worker that saw it.
    pub worker: u32,
    /// What the packet is, as the line shows it.
    pub summary: String,
}

impl PacketView {
    /// The view of `p`, whose interfaces are `started.interfaces`.
    pub fn new(p: &pb::CapturedPacket, started: &pb::CaptureStarted) -> PacketView {
        let port = started
            .interfaces
            .get(p.interface as usize)
            .map_or("?", String::as_str);
        let point = match pb::CapturePoint::try_from(p.point) {
            Ok(pb::CapturePoint::Rx) => "rx",
            Ok(pb::CapturePoint::Tx) => "tx",
            Ok(pb::CapturePoint::Drop) => "drop",
            Ok(pb::CapturePoint::Node) => "node",
            _ => "?",
        };
        let node = point == "node";
        PacketView {
            timestamp_ns: p.timestamp_ns,
            interface: format!("{}/{port}", started.host),
            point,
            drop_reason: (point == "drop").then(|| p.drop_reason.clone()),
            node: node.then(|| p.node.clone()),
            rx_port: (node && !p.rx_port.is_empty()).then(|| p.rx_port.clone()),
            length: p.original_length,
            captured: p.data.len(),
            worker: p.worker,
            summary: describe(&p.data),
        }
    }

    /// The one-line form: `HH:MM:SS.uuuuuu INTERFACE POINT SUMMARY, length N`, POINT being
    /// `rx`, `tx`, `drop(REASON)` or, at a graph node, `node(NAME, in RX_PORT)`.
    pub fn line(&self) -> String {
        let secs = self.timestamp_ns / 1_000_000_000;
        let micros = (self.timestamp_ns % 1_000_000_000) / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let point = match (&self.drop_reason, &self.node, &self.rx_port) {
            (Some(r), _, _) => format!("drop({r})"),
            (None, Some(n), Some(p)) => format!("node({n}, in {p})"),
            (None, Some(n), None) => format!("node({n})"),
            (None, None, _) => self.point.to_string(),
        };
        format!(
            "{h:02}:{m:02}:{s:02}.{micros:06} {} {point} {}, length {}",
            self.interface, self.summary, self.length
        )
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn ip4(d: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b = d.get(at..at + 4)?;
    Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

fn mac(d: &[u8]) -> String {
    d.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What an Ethernet frame is, as far as its captured bytes tell.
pub fn describe(d: &[u8]) -> String {
    if d.len() < 14 {
        return format!("truncated frame ({} bytes)", d.len());
    }
    let mut out = String::new();
    let mut at = 12;
    let mut ethertype = be16(d, at).unwrap_or(0);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        let Some(tci) = be16(d, at + 2) else {
            return "truncated VLAN tag".into();
        };
        let _ = write!(out, "vlan {} ", tci & 0x0fff);
        at += 4;
        ethertype = be16(d, at).unwrap_or(0);
    }
    let l3 = at + 2;
    let rest = match ethertype {
        0x0800 => describe_ip4(d, l3),
        0x0806 => describe_arp(d, l3),
        0x86dd => Some("IPv6".into()),
        t => Some(format!(
            "{} > {} ethertype {t:#06x}",
            mac(&d[6..12]),
            mac(&d[0..6])
        )),
    };
    out.push_str(&rest.unwrap_or_else(|| "truncated".into()));
    out
}

fn describe_arp(d: &[u8], at: usize) -> Option<String> {
    let op = be16(d, at + 6)?;
    let sender = ip4(d, at + 14)?;
    let target = ip4(d, at + 24)?;
    Some(match op {
        1 => format!("ARP, Request who-has {target} tell {sender}"),
        2 => format!("ARP, Reply {sender} is-at {}", mac(d.get(at + 8..at + 14)?)),
        op => format!("ARP, opcode {op}"),
    })
}

fn describe_ip4(d: &[u8], at: usize) -> Option<String> {
    let vihl = *d.get(at)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    let proto = *d.get(at + 9)?;
    let ttl = *d.get(at + 8)?;
    let src = ip4(d, at + 12)?;
    let dst = ip4(d, at + 16)?;
    let frag = be16(d, at + 6)? & 0x1fff;
    let l4 = at + ihl;
    let what = if frag != 0 {
        format!("{src} > {dst}: fragment offset {}", frag * 8)
    } else {
        match proto {
            1 => {
                let (t, c) = (*d.get(l4)?, *d.get(l4 + 1)?);
                let id_seq = || Some((be16(d, l4 + 4)?, be16(d, l4 + 6)?));
                let kind = match (t, id_seq()) {
                    (8, Some((id, seq))) => format!("echo request, id {id}, seq {seq}"),
                    (0, Some((id, seq))) => format!("echo reply, id {id}, seq {seq}"),
                    (3, _) => format!("destination unreachable, code {c}"),
                    (11, _) => format!("time exceeded, code {c}"),
                    _ => format!("type {t}, code {c}"),
                };
                format!("{src} > {dst}: ICMP {kind}")
            }
            6 => {
                let (sp, dp) = (be16(d, l4)?, be16(d, l4 + 2)?);
                let flags = *d.get(l4 + 13)?;
                let names: String = [(0x02, 'S'), (0x01, 'F'), (0x04, 'R'), (0x08, 'P')]
                    .iter()
                    .filter(|(bit, _)| flags & bit != 0)
                    .map(|(_, c)| *c)
                    .collect();
                let ack = if flags & 0x10 != 0 { "." } else { "" };
                format!("{src}.{sp} > {dst}.{dp}: TCP [{names}{ack}]")
            }
            17 => {
                let (sp, dp) = (be16(d, l4)?, be16(d, l4 + 2)?);
                format!("{src}.{sp} > {dst}.{dp}: UDP")
            }
            p => format!("{src} > {dst}: ip-proto-{p}"),
        }
    };
    Some(format!("IP ttl {ttl} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn frame(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[10, 0, 1, 2, 10, 0, 2, 2]);
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn describes_common_packets() {
        assert_eq!(
            describe(&frame(1, &[8, 0, 0, 0, 0, 7, 0, 3])),
            "IP ttl 64 10.0.1.2 > 10.0.2.2: ICMP echo request, id 7, seq 3"
        );
        assert_eq!(
            describe(&frame(17, &[0x13, 0x88, 0x17, 0xc1, 0, 8, 0, 0])),
            "IP ttl 64 10.0.1.2.5000 > 10.0.2.2.6081: UDP"
        );
        let mut tcp = vec![0, 80, 0x9c, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12];
        tcp.extend_from_slice(&[0; 6]);
        assert_eq!(
            describe(&frame(6, &tcp)),
            "IP ttl 64 10.0.1.2.80 > 10.0.2.2.40000: TCP [S.]"
        );
        assert_eq!(describe(&frame(6, &[0, 80])), "truncated");
        assert_eq!(describe(&[1, 2, 3]), "truncated frame (3 bytes)");
        let mut vlan = frame(47, &[]);
        vlan.splice(12..12, [0x81, 0, 0, 100]);
        assert_eq!(
            describe(&vlan),
            "vlan 100 IP ttl 64 10.0.1.2 > 10.0.2.2: ip-proto-47"
        );
    }

    #[test]
    fn line_and_json() {
        let started = pb::CaptureStarted {
            host: "r1".into(),
            interfaces: vec!["eth0".into(), "drop".into()],
            snaplen: 2048,
        };
        let p = pb::CapturedPacket {
            interface: 1,
            point: pb::CapturePoint::Drop as i32,
            drop_reason: "ip4_bad_checksum".into(),
            timestamp_ns: 3_723_000_004_000,
            original_length: 98,
            data: frame(1, &[0, 0, 0, 0, 0, 1, 0, 2]),
            worker: 1,
            node: String::new(),
            rx_port: String::new(),
        };
        let v = PacketView::new(&p, &started);
        assert_eq!(
            v.line(),
            "01:02:03.000004 r1/drop drop(ip4_bad_checksum) IP ttl 64 10.0.1.2 > 10.0.2.2: \
             ICMP echo reply, id 1, seq 2, length 98"
        );
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["drop_reason"], "ip4_bad_checksum");
        assert_eq!(j["interface"], "r1/drop");
        assert_eq!(j["captured"], 42);
        assert!(j.get("node").is_none() && j.get("rx_port").is_none());

        let started = pb::CaptureStarted {
            interfaces: vec!["node:security-group".into()],
            ..started
        };
        let n = pb::CapturedPacket {
            interface: 0,
            point: pb::CapturePoint::Node as i32,
            drop_reason: String::new(),
            node: "security-group".into(),
            rx_port: "vm-b1".into(),
            ..p
        };
        let v = PacketView::new(&n, &started);
        assert_eq!(
            v.line(),
            "01:02:03.000004 r1/node:security-group node(security-group, in vm-b1) IP ttl 64 \
             10.0.1.2 > 10.0.2.2: ICMP echo reply, id 1, seq 2, length 98"
        );
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(
            (&j["point"], &j["node"], &j["rx_port"]),
            (
                &Value::from("node"),
                &Value::from("security-group"),
                &Value::from("vm-b1")
            )
        );
        assert!(j.get("drop_reason").is_none());
    }
}
