//! Frames: fixed-capacity vectors of packets with their per-packet metadata, moved between
//! nodes without allocation.

use arrayvec::ArrayVec;

use super::DropReason;

/// Packets a frame holds: the largest rx burst.
pub const FRAME_CAP: usize = 256;

/// Per-packet metadata carried alongside the buffer through the graph.
///
/// Kept to 16 bytes, 8-aligned, so moving a packet between frames is two register moves
/// (a byte-packed layout here cost ~10 clocks/packet/node in store-forwarding stalls).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(8))]
pub struct Meta {
    /// Adjacency index chosen by `ip4-lookup`.
    pub adj: u32,
    /// Next-hop IPv4 address (host order) chosen by `ip4-rewrite` for neighbour lookup.
    pub nh_ip: u32,
    /// Port the packet came in on (for generated replies, the port to answer from).
    pub rx_port: u16,
    /// ICMP error to generate: next-hop MTU for fragmentation-needed, else 0.
    icmp_mtu: u16,
    /// ICMP error type.
    icmp_type: u8,
    /// ICMP error code.
    icmp_code: u8,
    /// Drop reason counted for the original packet when the ICMP error is generated.
    icmp_reason: DropReason,
    /// Bit 0: the packet was built by the dataplane itself (no TTL decrement on the way
    /// out). Bits 1–6: the worker's trace slot of a traced packet (0 = not traced; see
    /// [`crate::trace`]). Bit 7: a hairpinned packet whose source NAT is done, handed to the
    /// worker owning the session of its destination (see [`Meta::nat_hairpin`]).
    flags: u8,
}

/// [`Meta`] flag: built by the dataplane.
const LOCAL_ORIGIN: u8 = 1;
/// [`Meta`] flag: a hairpinned packet with its source translated, waiting for the way back.
const NAT_HAIRPIN: u8 = 0x80;
/// Shift of the trace slot in [`Meta`]'s flags.
const TRACE_SHIFT: u8 = 1;
/// Mask of the trace slot (after the shift): 63 slots, 0 = not traced.
pub const TRACE_SLOT_MASK: u8 = 0x3f;

impl Meta {
    /// Metadata of a packet received on `port`.
    #[inline(always)]
    pub fn rx(port: u16) -> Meta {
        Meta {
            rx_port: port,
            ..Meta::default()
        }
    }

    /// Records the ICMP error `ip4-icmp-error` should send for this packet.
    #[inline]
    pub fn set_icmp(&mut self, req: IcmpRequest) {
        self.icmp_type = req.msg_type;
        self.icmp_code = req.code;
        self.icmp_mtu = req.mtu;
        self.icmp_reason = req.reason;
    }

    /// True if the dataplane built the packet itself (no TTL decrement on the way out).
    #[inline(always)]
    pub fn local_origin(&self) -> bool {
        self.flags & LOCAL_ORIGIN != 0
    }

    /// Marks the packet as built by the dataplane.
    #[inline(always)]
    pub fn set_local_origin(&mut self) {
        self.flags |= LOCAL_ORIGIN;
    }

    /// True if the packet is traced (one branch on a byte the node already holds; always
    /// false in an `untraced` build, so every trace hook compiles away).
    #[inline(always)]
    pub fn traced(&self) -> bool {
        crate::trace::ENABLED && self.flags & (TRACE_SLOT_MASK << TRACE_SHIFT) != 0
    }

    /// The worker's trace slot of a traced packet (1..=63), 0 if it is not traced.
    #[inline(always)]
    pub fn trace_slot(&self) -> u8 {
        (self.flags >> TRACE_SHIFT) & TRACE_SLOT_MASK
    }

    /// Sets the trace slot (0 = not traced).
    #[inline]
    pub fn set_trace_slot(&mut self, slot: u8) {
        self.flags =
            (self.flags & (LOCAL_ORIGIN | NAT_HAIRPIN)) | ((slot & TRACE_SLOT_MASK) << TRACE_SHIFT);
    }

    /// True for a packet `gateway-output` hairpinned (addressed to one of the gateway's NAT
    /// addresses) and handed on with its source already translated: the worker owning the
    /// session of its destination only translates it back into the VPC.
    #[inline(always)]
    pub fn nat_hairpin(&self) -> bool {
        self.flags & NAT_HAIRPIN != 0
    }

    /// Sets or clears [`Meta::nat_hairpin`].
    #[inline]
    pub fn set_nat_hairpin(&mut self, on: bool) {
        if on {
            self.flags |= NAT_HAIRPIN;
        } else {
            self.flags &= !NAT_HAIRPIN;
        }
    }

    /// The ICMP error recorded by [`Meta::set_icmp`].
    #[inline]
    pub fn icmp(&self) -> IcmpRequest {
        IcmpRequest {
            msg_type: self.icmp_type,
            code: self.icmp_code,
            mtu: self.icmp_mtu,
            reason: self.icmp_reason,
        }
    }
}

/// The ICMP error `ip4-icmp-error` should send for a packet, and why it was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
