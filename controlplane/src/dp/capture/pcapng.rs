//! Writes a capture as pcapng (Wireshark, tshark, tcpdump read it): a Section Header naming
//! the dataplane host (`shb_hardware`) and aegisctl (`shb_userappl`), one Interface
//! Description Block per captured interface named `HOST/PORT` (`HOST/drop` for the drop
//! path, `HOST/node:NAME` for a graph node's input) with nanosecond timestamps, and an
//! Enhanced Packet Block per packet with its direction (`epb_flags`) or, as its comment, the
//! drop reason for drops and the node and rx port for node points. Interface
//! Statistics Blocks at the end carry the packets lost to full capture rings.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, PcapError};

/// `epb_flags` direction bits: inbound.
const INBOUND: u32 = 1;
/// `epb_flags` direction bits: outbound.
const OUTBOUND: u32 = 2;

/// A pcapng stream being written.
pub struct PcapngOut<W: Write> {
    w: PcapNgWriter<W>,
    interfaces: u32,
}

impl<W: Write> PcapngOut<W> {
    /// Writes the section header and the interfaces of `started` to `out`; `filter` is
    /// recorded in the section comment.
    pub fn new(out: W, started: &pb::CaptureStarted, filter: &str) -> std::io::Result<Self> {
        let mut comment = format!("aegis-dataplane capture on host {}", started.host);
        if !filter.is_empty() {
            comment.push_str(&format!(", filter: {filter}"));
        }
        let section = SectionHeaderBlock {
            options: vec![
                SectionHeaderOption::Hardware(Cow::Owned(format!(
                    "aegis-dataplane on {}",
                    started.host
                ))),
                SectionHeaderOption::UserApplication(Cow::Owned(format!(
                    "aegisctl capture {}",
                    env!("CARGO_PKG_VERSION")
                ))),
                SectionHeaderOption::Comment(Cow::Owned(comment)),
            ],
            ..SectionHeaderBlock::default()
        };
        let mut w = PcapNgWriter::with_section_header(out, section).map_err(io)?;
        for name in &started.interfaces {
            let description = if name == "drop" {
                format!(
                    "packets dropped by aegis-dataplane on {} (reason in each packet's comment)",
                    started.host
                )
            } else if let Some(node) = name.strip_prefix("node:") {
                format!(
                    "input of graph node {node} of aegis-dataplane on {} (rx port in each \
                     packet's comment)",
                    started.host
                )
            } else {
                format!("port {name} of aegis-dataplane on {}", started.host)
            };
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: started.snaplen,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(format!(
                        "{}/{name}",
                        started.host
                    ))),
                    InterfaceDescriptionOption::IfDescription(Cow::Owned(description)),
                    // pcap-file writes timestamps in nanoseconds.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })
            .map_err(io)?;
        }
        Ok(PcapngOut {
            w,
            interfaces: started.interfaces.len() as u32,
        })
    }

    /// Writes one packet.
    pub fn packet(&mut self, p: &pb::CapturedPacket) -> std::io::Result<()> {
        if p.interface >= self.interfaces {
            return Err(std::io::Error::other(format!(
                "packet on interface {} of {}",
                p.interface, self.interfaces
            )));
        }
        let options = match pb::CapturePoint::try_from(p.point) {
            Ok(pb::CapturePoint::Rx) => vec![EnhancedPacketOption::Flags(INBOUND)],
            Ok(pb::CapturePoint::Tx) => vec![EnhancedPacketOption::Flags(OUTBOUND)],
            Ok(pb::CapturePoint::Drop) => vec![EnhancedPacketOption::Comment(Cow::Owned(format!(
                "drop: {}",
                p.drop_reason
            )))],
            Ok(pb::CapturePoint::Node) => {
                let mut c = format!("node: {}", p.node);
                if !p.rx_port.is_empty() {
                    c.push_str(&format!(", rx port: {}", p.rx_port));
                }
                vec![EnhancedPacketOption::Comment(Cow::Owned(c))]
            }
            _ => Vec::new(),
        };
        self.w
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: p.interface,
                timestamp: Duration::from_nanos(p.timestamp_ns),
                original_len: p.original_length,
                data: Cow::Borrowed(&p.data),
                options,
            })
            .map_err(io)?;
        Ok(())
    }

    /// Pushes what was written so far to the output (live readers: `-w - | wireshark -k -i -`).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.get_mut().flush()
    }

    /// Writes the packets lost to full capture rings (`overflow`, over all interfaces:
    /// recorded on the first) and flushes; returns the writer.
    pub fn finish(mut self, overflow: u64, now_ns: u64) -> std::io::Result<W> {
        if self.interfaces > 0 {
            self.w
                .write_pcapng_block(InterfaceStatisticsBlock {
                    interface_id: 0,
                    timestamp: now_ns,
                    options: vec![
                        InterfaceStatisticsOption::IsbOsDrop(overflow),
                        InterfaceStatisticsOption::Comment(Cow::Owned(format!(
                            "capture_overflow: {overflow} matching packets not captured \
                             (worker capture rings full), all interfaces"
                        ))),
                    ],
                })
                .map_err(io)?;
        }
        let mut w = self.w.into_inner();
        w.flush()?;
        Ok(w)
    }
}

fn io(e: PcapError) -> std::io::Error {
    match e {
        PcapError::IoError(e) => e,
        e => std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn interfaces_names_flags_and_drop_comments_read_back() {
        let started = pb::CaptureStarted {
            host: "r1".into(),
            interfaces: vec!["eth0".into(), "drop".into(), "node:ip4-forward".into()],
            snaplen: 2048,
        };
        let mut out = PcapngOut::new(Vec::new(), &started, "icmp").unwrap();
        let pkt = |interface, point: pb::CapturePoint, reason: &str| pb::CapturedPacket {
            interface,
            point: point as i32,
            drop_reason: reason.into(),
            timestamp_ns: 1_700_000_000_123_456_789,
            original_length: 70,
            data: vec![0xaa; 60],
            worker: 0,
            node: String::new(),
            rx_port: String::new(),
        };
        out.packet(&pkt(0, pb::CapturePoint::Rx, "")).unwrap();
        out.packet(&pkt(1, pb::CapturePoint::Drop, "ip4_bad_checksum"))
            .unwrap();
        out.packet(&pb::CapturedPacket {
            node: "ip4-forward".into(),
            rx_port: "eth0".into(),
            ..pkt(2, pb::CapturePoint::Node, "")
        })
        .unwrap();
        assert!(out.packet(&pkt(3, pb::CapturePoint::Rx, "")).is_err());
        let bytes = out.finish(5, 1_700_000_001_000_000_000).unwrap();
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let shb = format!("{:?}", r.section());
        assert!(shb.contains("aegis-dataplane on r1"), "{shb}");
        let mut names = Vec::new();
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => names.push(format!("{:?}", i.options)),
                Block::EnhancedPacket(p) => packets.push((
                    p.interface_id,
                    p.timestamp,
                    p.original_len,
                    p.data.len(),
                    format!("{:?}", p.options),
                )),
                _ => {}
            }
        }
        assert!(names[0].contains("r1/eth0") && names[1].contains("r1/drop"));
        assert!(names[2].contains("r1/node:ip4-forward") && names[2].contains("graph node"));
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets[0].1,
            Duration::from_nanos(1_700_000_000_123_456_789)
        );
        assert_eq!((packets[0].2, packets[0].3), (70, 60));
        assert!(packets[0].4.contains("Flags(1)"));
        assert!(packets[1].4.contains("drop: ip4_bad_checksum"));
        assert_eq!(packets[2].0, 2);
        assert!(
            packets[2].4.contains("node: ip4-forward, rx port: eth0"),
            "{}",
            packets[2].4
        );
    }
}
