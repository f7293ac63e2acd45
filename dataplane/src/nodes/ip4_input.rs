//! `ip4-input`: the checks RFC 1812 §5.2.2 asks of a router (length, version, IHL, total
//! length, checksum), no source routing, no martian sources, unicast only; trims Ethernet
//! padding so later nodes see the IP total length.

use crate::buf::PacketBuf;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::wire::ipv4::{self, Ip4Error};

use super::L3;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf>(
    _ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B>,
) {
    for mut pkt in input.drain(..) {
        let frame_len = pkt.buf.len();
        let (total, src, dst) = match ipv4::Packet::new_checked(&pkt.buf.data()[L3..]) {
            Ok(ip) => (ip.total_len() as usize, ip.src(), ip.dst()),
            Err(e) => {
                out.drop(pkt.buf, reason(e));
                continue;
            }
        };
        if ipv4::is_martian_source(src) {
            out.drop(pkt.buf, DropReason::Ip4MartianSource);
            continue;
        }
        if ipv4::is_multicast_or_broadcast(dst) {
            out.drop(pkt.buf, DropReason::Ip4NotUnicast);
            continue;
        }
        let padding = frame_len - L3 - total;
        if padding > 0 {
            pkt.buf.trim(padding);
        }
        out.to(NodeId::Ip4Lookup, pkt.buf, pkt.meta);
    }
}

/// The drop reason for a header defect.
pub fn reason(e: Ip4Error) -> DropReason {
    match e {
        Ip4Error::Truncated => DropReason::Ip4Truncated,
        Ip4Error::BadVersion => DropReason::Ip4BadVersion,
        Ip4Error::BadIhl => DropReason::Ip4BadIhl,
        Ip4Error::BadLength => DropReason::Ip4BadLength,
        Ip4Error::BadChecksum => DropReason::Ip4BadChecksum,
        Ip4Error::SourceRoute => DropReason::Ip4SourceRoute,
    }
}
