//! The forwarding graph's nodes, one file each. Every node takes a whole frame and hands
//! each packet to a next node, a port, or a drop with its reason.

pub mod arp_input;
pub mod eth_input;
pub mod gateway;
pub mod icmp_error;
pub mod ip4_forward;
pub mod ip4_input;
pub mod ip4_local;
pub mod ip4_lookup;
pub mod ip4_rewrite;
pub mod overlay;

#[cfg(test)]
pub(crate) mod tests;

use crate::buf::PacketBuf;
use crate::graph::{Frame, NodeCtx, NodeId, Outputs};

/// Offset of the IPv4 header in a frame (untagged Ethernet).
pub const L3: usize = crate::wire::ethernet::HEADER_LEN;

/// Runs node `id` over `input`.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    id: NodeId,
    ctx: &mut NodeCtx<'_>,
    input: &mut Box<Frame<B>>,
    out: &mut Outputs<'_, B, TR>,
) {
    match id {
        NodeId::EthInput => eth_input::process(ctx, input, out),
        NodeId::VmInput => overlay::vm_input::process(ctx, input, out),
        NodeId::GeneveInput => overlay::geneve_input::process(ctx, input, out),
        NodeId::VpcRoute => overlay::vpc_route::process(ctx, input, out),
        NodeId::SecurityGroup => overlay::security_group::process(ctx, input, out),
        NodeId::GatewayOutput => gateway::process(ctx, input, out),
        NodeId::OverlayOutput => overlay::overlay_output::process(ctx, input, out),
        NodeId::ArpInput => arp_input::process(ctx, input, out),
        NodeId::Ip4Forward => ip4_forward::process(ctx, input, out),
        NodeId::Ip4Lookup => ip4_lookup::process(ctx, input, out),
        NodeId::Ip4Local => ip4_local::process(ctx, input, out),
        NodeId::Ip4IcmpError => icmp_error::process(ctx, input, out),
    }
}
