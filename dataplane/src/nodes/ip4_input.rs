//! IPv4 input checks, as RFC 1812 §5.2.2 asks of a router (length, version, IHL, total
//! length, checksum), no source routing, no martian sources, unicast only; trims Ethernet
//! padding so later nodes see the IP total length. Run by `ip4-forward` on every packet.

use crate::buf::PacketBuf;
use crate::graph::DropReason;
use crate::wire::ipv4::{self, Ip4Error};

use super::L3;

/// Validates one packet's IPv4 header and trims Ethernet padding. Returns the destination
/// address (host order) of a packet fit to route, or why it must be dropped.
#[inline(always)]
pub fn check<B: PacketBuf>(buf: &mut B) -> Result<u32, DropReason> {
    let frame_len = buf.len();
    let (total, src, dst) = match ipv4::Packet::new_checked(&buf.data()[L3..]) {
        Ok(ip) => (ip.total_len() as usize, ip.src(), ip.dst()),
        Err(e) => return Err(reason(e)),
    };
    if ipv4::is_martian_source(src) {
        return Err(DropReason::Ip4MartianSource);
    }
    if ipv4::is_multicast_or_broadcast(dst) {
        return Err(DropReason::Ip4NotUnicast);
    }
    if ipv4::is_martian_destination(dst) {
        return Err(DropReason::Ip4MartianDestination);
    }
    let padding = frame_len - L3 - total;
    if padding > 0 {
        buf.trim(padding);
    }
    Ok(dst)
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
