//! The overlay nodes of a compute host: VM ports in, the VPC routers, security groups,
//! delivery or Geneve encapsulation out, and Geneve decapsulation.
//!
//! Metadata while a packet is in the overlay: `meta.nh_ip` holds the VPC index and
//! `meta.adj` the destination endpoint (see [`crate::overlay::Overlay::endpoints`]);
//! `meta.rx_port` stays the port it came in on (a VM port, or the underlay port).

pub mod geneve_input;
pub mod overlay_output;
pub mod security_group;
pub mod vm_input;
pub mod vpc_route;

#[cfg(test)]
mod tests;

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::stats::bump;
use crate::graph::{Meta, NodeCtx, Outputs};
use crate::overlay::ROUTER_MAC;
use crate::state::Mac;
use crate::trace::Detail;
use crate::wire::ipv4;

use super::icmp_error::{build_in_place, may_answer};
use super::L3;

/// Unset value of `meta.adj` (no destination endpoint chosen yet).
pub const NO_DEST: u32 = u32::MAX;

/// The VPC index carried in the metadata.
#[inline(always)]
pub fn vpc_of(meta: &Meta) -> u16 {
    meta.nh_ip as u16
}

/// Answers a VM's packet with an ICMP error from its router (`from`, the subnet's gateway
/// address), sent straight back out of the VM's port to `vm_mac`; the original packet is
/// counted with `req.reason`. Rate-limited like every ICMP error the dataplane sends.
pub fn router_icmp<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    buf: B,
    meta: Meta,
    req: IcmpRequest,
    from: u32,
    vm_mac: Mac,
) {
    if let Some((buf, meta)) = build_router_icmp(ctx, out, buf, meta, req, from, vm_mac) {
        out.tx(meta.rx_port, buf, meta);
    }
}

/// Turns a VM's packet into the ICMP error `req` from `from` to the VM (Ethernet to
/// `vm_mac` from the router MAC) and returns it for the caller to send; counts the
/// original with `req.reason`. `None` when no error may be sent (rate limit, an error
/// about an error, a buffer that cannot be reshaped).
pub fn build_router_icmp<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    mut buf: B,
    meta: Meta,
    req: IcmpRequest,
    from: u32,
    vm_mac: Mac,
) -> Option<(B, Meta)> {
    ctx.env.stats.count_drop(req.reason);
    let (msg_type, code, mtu) = (req.msg_type, req.code, req.mtu);
    out.note(
        &meta,
        Detail::IcmpError {
            msg_type,
            code,
            mtu,
        },
    );
    out.dropped_for_icmp(buf.data(), &meta, req.reason);
    let mut meta = meta;
    if !may_answer(buf.data(), false) {
        out.forget(&mut meta);
        return None;
    }
    if !ctx.env.icmp_limit.take(ctx.now_ns) {
        bump(&ctx.env.stats.icmp_rate_limited, 1);
        out.forget(&mut meta);
        return None;
    }
    let ident = ctx.env.next_ident;
    ctx.env.next_ident = ident.wrapping_add(1);
    if !build_in_place(&mut buf, req, from, ident) {
        out.forget(&mut meta);
        return None;
    }
    let d = buf.data_mut();
    d[0..6].copy_from_slice(&vm_mac);
    d[6..12].copy_from_slice(&ROUTER_MAC);
    bump(&ctx.env.stats.icmp_sent, 1);
    Some((buf, meta))
}

/// The inner IPv4 packet's flow fields (header already validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerFlow {
    /// IP protocol.
    pub proto: u8,
    /// Source address (host order).
    pub src: u32,
    /// Destination address (host order).
    pub dst: u32,
    /// TCP/UDP source port, the ICMP echo identifier, else 0.
    pub sport: u16,
    /// TCP/UDP destination port, the ICMP echo identifier, else 0.
    pub dport: u16,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMP type (0 for other protocols).
    pub icmp_type: u8,
    /// Offset of the L4 header in the frame.
    pub l4: usize,
    /// IPv4 total length.
    pub len: u16,
}

impl InnerFlow {
    /// All zero (scratch arrays start with it).
    pub const NONE: InnerFlow = InnerFlow {
        proto: 0,
        src: 0,
        dst: 0,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        l4: 0,
        len: 0,
    };

    /// The connection-table flow of this packet in conntrack zone `zone`.
    #[inline]
    pub fn in_zone(&self, zone: u16) -> crate::conntrack::Flow {
        crate::conntrack::Flow {
            zone,
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
        }
    }
}

/// Reads the flow of the IPv4 packet at [`L3`] of `frame`. Non-first fragments and
/// truncated L4 headers give ports 0.
///
/// Always inlined: returned through memory, the flow was written field by field and read
/// back as two 16-byte words, a store-forwarding stall of ~20 clocks per packet in
/// `security-group` (see docs/benchmarks.md).
#[inline(always)]
pub fn inner_flow(frame: &[u8]) -> InnerFlow {
    let ip = ipv4::Packet::new_unchecked(&frame[L3..]);
    let l4 = L3 + ip.header_len();
    let mut f = InnerFlow {
        proto: ip.protocol(),
        src: ip.src(),
        dst: ip.dst(),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        l4,
        len: ip.total_len(),
    };
    if ip.frag_offset() != 0 {
        return f;
    }
    let rest = frame.get(l4..).unwrap_or_default();
    match f.proto {
        ipv4::PROTO_TCP if rest.len() >= 14 => {
            f.sport = crate::wire::be16(rest, 0);
            f.dport = crate::wire::be16(rest, 2);
            f.tcp_flags = rest[13];
        }
        ipv4::PROTO_UDP if rest.len() >= 4 => {
            f.sport = crate::wire::be16(rest, 0);
            f.dport = crate::wire::be16(rest, 2);
        }
        ipv4::PROTO_ICMP if rest.len() >= 8 => {
            f.icmp_type = rest[0];
            if matches!(rest[0], 0 | 8 | 13 | 14) {
                let id = crate::wire::be16(rest, 4);
                f.sport = id;
                f.dport = id;
            }
        }
        _ => {}
    }
    f
}
