//! Flow mixes: `flows` distinct UDP flows whose destinations hit a route table, `count`
//! packets each from a flow drawn uniformly at random, written as a pcap (Ethernet link type,
//! one microsecond apart).

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::net::{Ipv4Prefix, MacAddr};
use crate::packet::{build_frame, frame_size_ok, Flow, MAX_FRAME, MIN_FRAME};
use crate::rng::Rng;

/// Errors making a flow mix.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// An option is out of range.
    #[error("{field}: {reason}")]
    BadOption {
        /// The command-line option.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing the pcap failed.
    #[error("cannot write the pcap: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FlowMix {
    /// Packets to write.
    pub count: usize,
    /// Distinct flows.
    pub flows: usize,
    /// Ethernet source of every packet.
    pub src_mac: MacAddr,
    /// Ethernet destination of every packet (the device under test's MAC).
    pub dst_mac: MacAddr,
    /// Sources are drawn from this prefix.
    pub src_prefix: Ipv4Prefix,
    /// Each flow's destination is a random host of one of these prefixes, chosen uniformly
    /// (one per route of the table: the destination lies in that route's prefix).
    pub destinations: Vec<Ipv4Prefix>,
    /// Ethernet frame size, FCS included (64 writes 60-byte packets).
    pub frame_size: usize,
    /// Random seed.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Packets written.
    pub packets: usize,
    /// Distinct flows.
    pub flows: usize,
    /// Bytes of packet data written (FCS excluded).
    pub bytes: u64,
}

impl FlowMix {
    /// Checks the options, naming the offending one.
    pub fn validate(&self) -> Result<(), FlowError> {
        let bad = |field, reason: String| Err(FlowError::BadOption { field, reason });
        if self.count == 0 {
            return bad("--count", "must be at least 1".into());
        }
        if self.flows == 0 {
            return bad("--flows", "must be at least 1".into());
        }
        if self.flows > self.count {
            return bad(
                "--flows",
                format!(
                    "{} flows need at least as many packets (--count {})",
                    self.flows, self.count
                ),
            );
        }
        if self.destinations.is_empty() {
            return bad("--dst-prefix/--routes", "no destination prefix".into());
        }
        if !frame_size_ok(self.frame_size) {
            return bad(
                "--frame-size",
                format!("{} is outside {MIN_FRAME}..={MAX_FRAME}", self.frame_size),
            );
        }
        Ok(())
    }

    /// The flows, in order (deterministic for the seed).
    pub fn make_flows(&self, rng: &mut Rng) -> Vec<Flow> {
        (0..self.flows)
            .map(|_| {
                let dst = self.destinations[rng.below(self.destinations.len() as u64) as usize];
                Flow {
                    src_mac: self.src_mac,
                    dst_mac: self.dst_mac,
                    src_ip: random_host(&self.src_prefix, rng),
                    dst_ip: random_host(&dst, rng),
                    src_port: rng.range_u32(1024, 65535) as u16,
                    dst_port: rng.range_u32(1024, 65535) as u16,
                }
            })
            .collect()
    }

    /// Writes the pcap to `w`.
    pub fn write_pcap(&self, w: impl Write) -> Result<Summary, FlowError> {
        self.validate()?;
        let mut rng = Rng::new(self.seed);
        let flows = self.make_flows(&mut rng);
        let mut writer = PcapWriter::new(w)?;
        let mut frame = Vec::with_capacity(self.frame_size);
        let mut bytes = 0u64;
        for i in 0..self.count {
            // Every flow appears at least once: the first `flows` packets go round-robin.
            let flow = if i < flows.len() {
                &flows[i]
            } else {
                &flows[rng.below(flows.len() as u64) as usize]
            };
            build_frame(flow, self.frame_size, i as u16, &mut frame);
            let ts = Duration::from_micros(i as u64);
            writer.write_packet(&PcapPacket::new(ts, frame.len() as u32, &frame))?;
            bytes += frame.len() as u64;
        }
        Ok(Summary {
            packets: self.count,
            flows: flows.len(),
            bytes,
        })
    }
}

/// A random address of `prefix`, avoiding the network and broadcast addresses when the
/// prefix has more than two.
pub fn random_host(prefix: &Ipv4Prefix, rng: &mut Rng) -> Ipv4Addr {
    let size = prefix.size();
    let offset = if size > 2 {
        1 + rng.below(size - 2)
    } else {
        rng.below(size)
    };
    prefix.nth(offset)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use pcap_file::pcap::PcapReader;

    use super::*;
    use crate::packet::ones_complement_sum;

    fn mix() -> FlowMix {
        FlowMix {
            count: 2000,
            flows: 100,
            src_mac: "02:00:00:00:00:01".parse().unwrap(),
            dst_mac: "02:00:00:00:00:02".parse().unwrap(),
            src_prefix: "198.18.0.0/15".parse().unwrap(),
            destinations: vec![
                "10.0.0.0/8".parse().unwrap(),
                "172.16.5.0/24".parse().unwrap(),
                "203.0.113.7/32".parse().unwrap(),
            ],
            frame_size: 64,
            seed: 9,
        }
    }

    fn read_back(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut r = PcapReader::new(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            out.push(p.unwrap().data.into_owned());
        }
        out
    }

    #[test]
    fn pcap_holds_valid_packets_to_the_table() {
        let m = mix();
        let mut buf = Vec::new();
        let summary = m.write_pcap(&mut buf).unwrap();
        assert_eq!(
            summary,
            Summary {
                packets: 2000,
                flows: 100,
                bytes: 2000 * 60
            }
        );
        let pkts = read_back(&buf);
        assert_eq!(pkts.len(), 2000);
        let mut flows = HashSet::new();
        let mut hit = [0usize; 3];
        for p in &pkts {
            assert_eq!(p.len(), 60);
            assert_eq!(&p[0..6], &m.dst_mac.0);
            assert_eq!(&p[6..12], &m.src_mac.0);
            assert_eq!(ones_complement_sum(&p[14..34]), 0xffff, "IPv4 checksum");
            assert_eq!(p[22], 64, "TTL");
            let src = Ipv4Addr::new(p[26], p[27], p[28], p[29]);
            let dst = Ipv4Addr::new(p[30], p[31], p[32], p[33]);
            assert!(m.src_prefix.contains(src));
            let which = m.destinations.iter().position(|d| d.contains(dst));
            hit[which.expect("every destination is in the table")] += 1;
            flows.insert((src, dst, &p[34..38]));
        }
        assert_eq!(flows.len(), 100, "exactly the requested number of flows");
        assert!(hit.iter().all(|&h| h > 0), "every route is hit: {hit:?}");
    }

    #[test]
    fn same_seed_same_file() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        mix().write_pcap(&mut a).unwrap();
        mix().write_pcap(&mut b).unwrap();
        FlowMix { seed: 10, ..mix() }.write_pcap(&mut c).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn options_are_checked() {
        let cases = [
            (FlowMix { count: 0, ..mix() }, "--count"),
            (FlowMix { flows: 0, ..mix() }, "--flows"),
            (
                FlowMix {
                    flows: 3000,
                    ..mix()
                },
                "--flows",
            ),
            (
                FlowMix {
                    destinations: vec![],
                    ..mix()
                },
                "--dst-prefix/--routes",
            ),
            (
                FlowMix {
                    frame_size: 60,
                    ..mix()
                },
                "--frame-size",
            ),
        ];
        for (m, field) in cases {
            let e = m.write_pcap(Vec::new()).unwrap_err();
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn hosts_avoid_network_and_broadcast() {
        let mut rng = Rng::new(3);
        let p: Ipv4Prefix = "10.0.0.0/30".parse().unwrap();
        for _ in 0..100 {
            let h = random_host(&p, &mut rng);
            assert!(h == Ipv4Addr::new(10, 0, 0, 1) || h == Ipv4Addr::new(10, 0, 0, 2));
        }
        let one: Ipv4Prefix = "10.0.0.9/32".parse().unwrap();
        assert_eq!(random_host(&one, &mut rng), Ipv4Addr::new(10, 0, 0, 9));
    }
}
