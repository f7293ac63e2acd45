//! Frames: fixed-capacity vectors of packets with their per-packet metadata, moved between
//! nodes without allocation.

use arrayvec::ArrayVec;

use super::DropReason;

/// Packets a frame holds: the largest rx burst.
pub const FRAME_CAP: usize = 256;

/// Per-packet metadata carried alongside the buffer through the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// Port the packet came in on (for generated replies, the port to answer from).
    pub rx_port: u16,
    /// Adjacency index chosen by `ip4-lookup`.
    pub adj: u32,
    /// Next-hop IPv4 address (host order) chosen by `ip4-rewrite` for neighbour lookup.
    pub nh_ip: u32,
    /// ICMP error to generate: type, code, and (for fragmentation-needed) the MTU.
    pub icmp: IcmpRequest,
    /// The packet was built by the dataplane itself (no TTL decrement on the way out).
    pub local_origin: bool,
}

/// The ICMP error `ip4-icmp-error` should send for a packet, and why it was stopped.
#[derive(Debug, Clone, Copy)]
pub struct IcmpRequest {
    /// ICMP type.
    pub msg_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Next-hop MTU for fragmentation-needed, else 0.
    pub mtu: u16,
    /// The drop reason counted for the original packet.
    pub reason: DropReason,
}

impl Default for IcmpRequest {
    fn default() -> Self {
        IcmpRequest {
            msg_type: 0,
            code: 0,
            mtu: 0,
            reason: DropReason::NoRoute,
        }
    }
}

/// A packet in flight: its buffer and metadata.
pub struct Pkt<B> {
    /// The packet bytes.
    pub buf: B,
    /// Metadata.
    pub meta: Meta,
}

/// A fixed-capacity vector of packets.
pub type Frame<B> = ArrayVec<Pkt<B>, FRAME_CAP>;

/// Packets queued for one port's transmit queue (metadata is no longer needed there).
pub type TxFrame<B> = ArrayVec<B, FRAME_CAP>;
