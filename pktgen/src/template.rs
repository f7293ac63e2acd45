//! Packet templates for the live generator: Ethernet [802.1Q] IPv4 UDP or TCP-SYN frames,
//! optionally Geneve-encapsulated, one per (flow, size) entry of a [`FrameTable`] that the
//! tx cores cycle through.
//!
//! Every frame is built once, completely, with valid checksums and a zeroed measurement
//! stamp at its end (see [`crate::stamp`]). At transmit time [`Frame::stamp_into`] writes the
//! stamp and updates the innermost L4 checksum incrementally, so sending costs one copy plus
//! a few additions whatever the packet size.

use std::net::Ipv4Addr;

use crate::csum;
use crate::net::MacAddr;
use crate::rng::Rng;
use crate::stamp::{Stamp, STAMP_LEN};
use crate::values::{AddrRange, FlowMode, PortRange, Protocol, SizeSpec, IMIX};

/// Bytes of FCS counted in frame sizes but not stored.
pub const FCS_LEN: usize = 4;
/// Smallest Ethernet frame, FCS included.
pub const MIN_FRAME: usize = 64;
/// Largest untagged frame for a 1500-byte MTU, FCS included (a VLAN tag adds 4).
pub const MAX_FRAME: usize = 1518;
/// Most flows a profile may ask for.
pub const MAX_FLOWS: u64 = 1 << 20;
/// Most template bytes a table may hold.
pub const MAX_TABLE_BYTES: usize = 512 << 20;
/// Geneve's UDP port.
pub const GENEVE_PORT: u16 = 6081;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_TEB: u16 = 0x6558;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// Geneve header (8) + inner Ethernet (14) + outer IPv4 (20) + outer UDP (8).
const GENEVE_OVERHEAD: usize = 8 + 14 + 20 + 8;

/// An 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// VLAN id, 0..=4095.
    pub id: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
}

/// Geneve encapsulation: the flow's packet becomes the inner frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geneve {
    /// Virtual network identifier, 24 bits.
    pub vni: u32,
    /// Outer IPv4 source (the tunnel endpoint).
    pub outer_src_ip: Ipv4Addr,
    /// Outer IPv4 destination.
    pub outer_dst_ip: Ipv4Addr,
    /// Inner Ethernet source.
    pub inner_src_mac: MacAddr,
    /// Inner Ethernet destination.
    pub inner_dst_mac: MacAddr,
}

/// Everything that shapes the generated packets.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSpec {
    /// UDP or TCP-SYN.
    pub protocol: Protocol,
    /// Frame sizes, FCS included.
    pub size: SizeSpec,
    /// Number of distinct flows.
    pub flows: u64,
    /// How flows take values from the ranges.
    pub flow_mode: FlowMode,
    /// Ethernet source (outer).
    pub src_mac: MacAddr,
    /// Ethernet destination (outer): the device under test.
    pub dst_mac: MacAddr,
    /// IPv4 sources.
    pub src_ip: AddrRange,
    /// IPv4 destinations.
    pub dst_ip: AddrRange,
    /// L4 source ports.
    pub src_port: PortRange,
    /// L4 destination ports.
    pub dst_port: PortRange,
    /// IPv4 TTL (inner and outer).
    pub ttl: u8,
    /// Optional 802.1Q tag on the outer frame.
    pub vlan: Option<Vlan>,
    /// Optional Geneve encapsulation.
    pub geneve: Option<Geneve>,
    /// Seed for random flows and sizes.
    pub seed: u64,
}

impl TrafficSpec {
    /// The smallest frame (FCS included) that holds the headers and the stamp.
    pub fn min_frame(&self) -> usize {
        (self.header_len() + STAMP_LEN + FCS_LEN).max(MIN_FRAME)
    }

    /// The largest frame (FCS included) a 1500-byte MTU allows.
    pub fn max_frame(&self) -> usize {
        MAX_FRAME + if self.vlan.is_some() { 4 } else { 0 }
    }

    /// Header bytes in front of the payload.
    pub fn header_len(&self) -> usize {
        let l4 = match self.protocol {
            Protocol::Udp => 8,
            Protocol::TcpSyn => 20,
        };
        14 + self.vlan.map_or(0, |_| 4) + self.geneve.map_or(0, |_| GENEVE_OVERHEAD) + 20 + l4
    }

    /// How many distinct flows the ranges allow.
    pub fn combinations(&self) -> u128 {
        u128::from(self.src_ip.len())
            * u128::from(self.dst_ip.len())
            * u128::from(self.src_port.len())
            * u128::from(self.dst_port.len())
    }
}

/// The addresses and ports of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// L4 source port.
    pub src_port: u16,
    /// L4 destination port.
    pub dst_port: u16,
}

/// The flows of `spec`, in order (see [`FlowMode`]).
pub fn make_flows(spec: &TrafficSpec) -> Vec<FlowTuple> {
    let mut rng = Rng::new(spec.seed);
    (0..spec.flows)
        .map(|i| match spec.flow_mode {
            FlowMode::Sequential => {
                let (n_dst, n_src, n_dp) =
                    (spec.dst_ip.len(), spec.src_ip.len(), spec.dst_port.len());
                let d = i % n_dst;
                let r = i / n_dst;
                let s = r % n_src;
                let r = r / n_src;
                let dp = r % n_dp;
                let sp = (r / n_dp) % spec.src_port.len();
                FlowTuple {
                    src_ip: spec.src_ip.nth(s),
                    dst_ip: spec.dst_ip.nth(d),
                    src_port: spec.src_port.nth(sp),
                    dst_port: spec.dst_port.nth(dp),
                }
            }
            FlowMode::Random => FlowTuple {
                src_ip: spec.src_ip.nth(rng.below(spec.src_ip.len())),
                dst_ip: spec.dst_ip.nth(rng.below(spec.dst_ip.len())),
                src_port: spec.src_port.nth(rng.below(spec.src_port.len())),
                dst_port: spec.dst_port.nth(rng.below(spec.dst_port.len())),
            },
        })
        .collect()
}

/// One ready-to-send frame with a zeroed stamp.
#[derive(Debug, Clone)]
pub struct Frame {
    bytes: Box<[u8]>,
    /// Offset of the innermost L4 header.
    l4_start: usize,
    /// Offset of its checksum field.
    csum_off: usize,
    /// Folded sum of pseudo-header and segment with checksum field and stamp zero.
    base_sum: u16,
    /// UDP (a computed checksum of 0 is sent as 0xffff).
    udp: bool,
}

impl Frame {
    /// The frame bytes (FCS excluded) with a zero stamp.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Stored length (frame size minus the FCS).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: frames hold at least their headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The frame size in bits on the wire, FCS included.
    pub fn wire_bits(&self) -> u64 {
        ((self.bytes.len() + FCS_LEN) * 8) as u64
    }

    /// Writes `stamp` into `buf` (a copy of [`Frame::bytes`]) and fixes the L4 checksum.
    #[inline]
    pub fn stamp_into(&self, buf: &mut [u8], stamp: &Stamp) {
        let len = self.bytes.len();
        if buf.len() < len {
            return;
        }
        let enc = stamp.encode();
        let off = len - STAMP_LEN;
        buf[off..len].copy_from_slice(&enc);
        let s = csum::add_at(self.base_sum, off - self.l4_start, &enc);
        let mut c = !s;
        if c == 0 && self.udp {
            c = 0xffff;
        }
        buf[self.csum_off..self.csum_off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Builds the frame of `flow` with `size` bytes (FCS included; `spec.min_frame()..=
/// spec.max_frame()`).
pub fn build_frame(spec: &TrafficSpec, flow: &FlowTuple, size: usize) -> Frame {
    let len = size - FCS_LEN;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&spec.dst_mac.0);
    f[6..12].copy_from_slice(&spec.src_mac.0);
    let mut o = 12;
    if let Some(v) = spec.vlan {
        f[o..o + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        let tci = (u16::from(v.pcp & 7) << 13) | (v.id & 0x0fff);
        f[o + 2..o + 4].copy_from_slice(&tci.to_be_bytes());
        o += 4;
    }
    f[o..o + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    o += 2;
    if let Some(g) = spec.geneve {
        write_ipv4(
            &mut f[o..],
            g.outer_src_ip,
            g.outer_dst_ip,
            PROTO_UDP,
            len - o,
            spec.ttl,
        );
        let u = o + 20;
        // Outer UDP: a source port from the inner flow (for ECMP/RSS entropy), checksum 0
        // (allowed for Geneve over IPv4, RFC 8926 3.3).
        let entropy = 49152 + (flow_hash(flow) % 16384) as u16;
        f[u..u + 2].copy_from_slice(&entropy.to_be_bytes());
        f[u + 2..u + 4].copy_from_slice(&GENEVE_PORT.to_be_bytes());
        f[u + 4..u + 6].copy_from_slice(&((len - u) as u16).to_be_bytes());
        let gh = u + 8;
        f[gh] = 0; // version 0, no options
        f[gh + 1] = 0;
        f[gh + 2..gh + 4].copy_from_slice(&ETHERTYPE_TEB.to_be_bytes());
        f[gh + 4..gh + 7].copy_from_slice(&(g.vni & 0xff_ffff).to_be_bytes()[1..4]);
        let e = gh + 8;
        f[e..e + 6].copy_from_slice(&g.inner_dst_mac.0);
        f[e + 6..e + 12].copy_from_slice(&g.inner_src_mac.0);
        f[e + 12..e + 14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        o = e + 14;
    }
    let proto = match spec.protocol {
        Protocol::Udp => PROTO_UDP,
        Protocol::TcpSyn => PROTO_TCP,
    };
    write_ipv4(
        &mut f[o..],
        flow.src_ip,
        flow.dst_ip,
        proto,
        len - o,
        spec.ttl,
    );
    let l4 = o + 20;
    let seg_len = len - l4;
    f[l4..l4 + 2].copy_from_slice(&flow.src_port.to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&flow.dst_port.to_be_bytes());
    let csum_off = match spec.protocol {
        Protocol::Udp => {
            f[l4 + 4..l4 + 6].copy_from_slice(&(seg_len as u16).to_be_bytes());
            l4 + 6
        }
        Protocol::TcpSyn => {
            let isn = (flow_hash(flow) >> 16) as u32;
            f[l4 + 4..l4 + 8].copy_from_slice(&isn.to_be_bytes());
            f[l4 + 12] = 5 << 4; // data offset: 5 words, no options
            f[l4 + 13] = 0x02; // SYN
            f[l4 + 14..l4 + 16].copy_from_slice(&64240u16.to_be_bytes());
            l4 + 16
        }
    };
    let pseudo = csum::pseudo_header(flow.src_ip.octets(), flow.dst_ip.octets(), proto, seg_len);
    let base_sum = csum::fold(pseudo + csum::sum(&f[l4..]));
    let mut c = !base_sum;
    let udp = spec.protocol == Protocol::Udp;
    if c == 0 && udp {
        c = 0xffff;
    }
    f[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
    Frame {
        bytes: f.into_boxed_slice(),
        l4_start: l4,
        csum_off,
        base_sum,
        udp,
    }
}

/// Writes a 20-byte IPv4 header for a datagram of `total` bytes, with its checksum.
fn write_ipv4(h: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total: usize, ttl: u8) {
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..8].copy_from_slice(&[0, 0, 0, 0]);
    h[8] = ttl;
    h[9] = proto;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = csum::finish(csum::sum(&h[0..20]));
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

fn flow_hash(f: &FlowTuple) -> u64 {
    let mut r = Rng::new(
        (u64::from(u32::from(f.src_ip)) << 32 | u64::from(u32::from(f.dst_ip)))
            ^ (u64::from(f.src_port) << 16 | u64::from(f.dst_port)),
    );
    r.next_u64()
}

/// The frames the tx cores cycle through: every flow once per size pattern.
#[derive(Debug, Clone)]
pub struct FrameTable {
    frames: Vec<Frame>,
}

/// IMIX sizes in the order they are sent: 7 × 64, 4 × 570, 1 × 1518, interleaved.
const IMIX_PATTERN: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

impl FrameTable {
    /// Builds the table for `spec` (which must be valid: see `profile`). Fixed sizes give one
    /// frame per flow; IMIX gives each flow (up to 4096 flows) every IMIX size in the exact
    /// 7:4:1 ratio; ranges draw at least 1024 sizes.
    pub fn build(spec: &TrafficSpec) -> Result<FrameTable, String> {
        let flows = make_flows(spec);
        let n = flows.len();
        let min = spec.min_frame();
        let entries: Vec<(usize, usize)> = match spec.size {
            SizeSpec::Fixed(s) => (0..n).map(|i| (i, usize::from(s))).collect(),
            SizeSpec::Imix => {
                let _ = IMIX; // sizes documented there
                let len = if n <= 4096 {
                    n * 12
                } else {
                    n.div_ceil(12) * 12
                };
                (0..len)
                    .map(|i| {
                        let pat = if n <= 4096 { (i / n) % 12 } else { i % 12 };
                        (i % n, usize::from(IMIX_PATTERN[pat]).max(min))
                    })
                    .collect()
            }
            SizeSpec::Range(lo, hi) => {
                let len = n * 1024usize.div_ceil(n);
                let mut rng = Rng::new(spec.seed ^ 0x5151_5151);
                (0..len)
                    .map(|i| {
                        let s = rng.range_u32(u32::from(lo), u32::from(hi));
                        (i % n, s as usize)
                    })
                    .collect()
            }
        };
        let bytes: usize = entries.iter().map(|&(_, s)| s).sum();
        if bytes > MAX_TABLE_BYTES {
            return Err(format!(
                "traffic.flows: {} flows of size {} need {} MiB of packet templates; at most {} MiB",
                spec.flows,
                spec.size,
                bytes >> 20,
                MAX_TABLE_BYTES >> 20
            ));
        }
        let frames = entries
            .into_iter()
            .map(|(f, s)| build_frame(spec, &flows[f], s))
            .collect();
        Ok(FrameTable { frames })
    }

    /// The frames.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Mean frame size on the wire in bits (FCS included).
    pub fn mean_wire_bits(&self) -> f64 {
        let total: u64 = self.frames.iter().map(Frame::wire_bits).sum();
        total as f64 / self.frames.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::read_stamp;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec() -> TrafficSpec {
        TrafficSpec {
            protocol: Protocol::Udp,
            size: SizeSpec::Fixed(64),
            flows: 4,
            flow_mode: FlowMode::Sequential,
            src_mac: MacAddr([2, 0, 0, 0, 0, 0x99]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: "198.18.0.1".parse().unwrap(),
            dst_ip: "10.0.0.1-10.0.0.2".parse().unwrap(),
            src_port: "1000-1001".parse().unwrap(),
            dst_port: PortRange::single(5001),
            ttl: 64,
            vlan: None,
            geneve: None,
            seed: 1,
        }
    }

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            stream: 2,
            seq,
            tsc: 0xdead_beef_0000 + seq,
        }
    }

    /// Verifies the (innermost) L4 checksum with etherparse's own computation.
    fn check(frame: &[u8], spec: &TrafficSpec) {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
        if spec.vlan.is_some() {
            assert!(!p.link_exts.is_empty(), "VLAN present");
        }
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
        assert_eq!(h.time_to_live, spec.ttl);
        let (ip, l4) = if spec.geneve.is_some() {
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("outer UDP")
            };
            assert_eq!(u.destination_port(), GENEVE_PORT);
            assert_eq!(u.checksum(), 0);
            let g = u.payload();
            assert_eq!(&g[2..4], &[0x65, 0x58]);
            let inner = SlicedPacket::from_ethernet(&g[8..]).expect("inner frame parses");
            let Some(NetSlice::Ipv4(iip)) = inner.net else {
                panic!("inner IPv4")
            };
            let ih = iip.header().to_header();
            assert_eq!(ih.header_checksum, ih.calc_header_checksum());
            (ih, inner.transport)
        } else {
            (h, p.transport)
        };
        match (spec.protocol, l4) {
            (Protocol::Udp, Some(TransportSlice::Udp(u))) => {
                let uh = u.to_header();
                let want = uh.calc_checksum_ipv4(&ip, u.payload()).unwrap();
                assert_eq!(uh.checksum, want, "UDP checksum");
                assert_eq!(usize::from(uh.length), 8 + u.payload().len());
            }
            (Protocol::TcpSyn, Some(TransportSlice::Tcp(t))) => {
                assert!(t.syn() && !t.ack() && !t.rst() && !t.fin());
                let th = t.to_header();
                let want = th.calc_checksum_ipv4(&ip, t.payload()).unwrap();
                assert_eq!(th.checksum, want, "TCP checksum");
            }
            (p, t) => panic!("{p:?}: unexpected transport {t:?}"),
        }
    }

    fn stamped(frame: &Frame, seq: u64) -> Vec<u8> {
        let mut buf = frame.bytes().to_vec();
        frame.stamp_into(&mut buf, &stamp(seq));
        buf
    }

    #[test]
    fn udp_64_checksums_and_stamp() {
        let s = spec();
        let t = FrameTable::build(&s).unwrap();
        assert_eq!(t.frames().len(), 4);
        for (i, f) in t.frames().iter().enumerate() {
            assert_eq!(f.len(), 60);
            check(f.bytes(), &s);
            for seq in [0, 1, 77, (1 << 48) - 5] {
                let b = stamped(f, seq + i as u64);
                check(&b, &s);
                assert_eq!(read_stamp(&b), Some(stamp(seq + i as u64)));
            }
        }
    }

    #[test]
    fn sequential_flows_are_distinct_and_random_stay_in_range() {
        let s = spec();
        let flows = make_flows(&s);
        let set: std::collections::HashSet<_> = flows.iter().collect();
        assert_eq!(set.len(), 4);
        assert_eq!(flows[0].dst_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(flows[1].dst_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((flows[1].src_port, flows[2].src_port), (1000, 1001));
        let r = TrafficSpec {
            flow_mode: FlowMode::Random,
            flows: 100,
            ..s
        };
        for f in make_flows(&r) {
            assert!([1000, 1001].contains(&f.src_port));
            assert!(f.dst_ip.octets()[3] == 1 || f.dst_ip.octets()[3] == 2);
        }
    }

    #[test]
    fn tcp_syn_vlan_odd_sizes() {
        let s = TrafficSpec {
            protocol: Protocol::TcpSyn,
            vlan: Some(Vlan { id: 100, pcp: 3 }),
            size: SizeSpec::Range(s_min(), 1522),
            ..spec()
        };
        fn s_min() -> u16 {
            80
        }
        assert_eq!(s.min_frame(), 80);
        let t = FrameTable::build(&s).unwrap();
        assert!(
            t.frames().iter().any(|f| f.len() % 2 == 1),
            "odd sizes drawn"
        );
        for f in t.frames().iter().take(200) {
            check(&stamped(f, 12345), &s);
            assert_eq!(&f.bytes()[12..16], &[0x81, 0x00, 0x60, 100]);
        }
    }

    #[test]
    fn geneve_imix() {
        let s = TrafficSpec {
            size: SizeSpec::Imix,
            geneve: Some(Geneve {
                vni: 0x123456,
                outer_src_ip: Ipv4Addr::new(192, 0, 2, 1),
                outer_dst_ip: Ipv4Addr::new(192, 0, 2, 2),
                inner_src_mac: MacAddr([2, 0, 0, 0, 1, 1]),
                inner_dst_mac: MacAddr([2, 0, 0, 0, 1, 2]),
            }),
            ..spec()
        };
        let t = FrameTable::build(&s).unwrap();
        assert_eq!(t.frames().len(), 48);
        let small = t
            .frames()
            .iter()
            .filter(|f| f.len() == s.min_frame() - 4)
            .count();
        let big = t.frames().iter().filter(|f| f.len() == 1514).count();
        assert_eq!(
            (small, big),
            (28, 4),
            "7:4:1, the small size raised to the minimum"
        );
        for f in t.frames() {
            let b = stamped(f, 9);
            check(&b, &s);
            assert_eq!(read_stamp(&b), Some(stamp(9)));
            assert_eq!(&b[46..49], &[0x12, 0x34, 0x56], "VNI");
        }
    }
}
