//! `geneve-input`: Geneve packets to this host's underlay address (UDP 6081, from
//! `ip4-local`). Checks the header (version 0, options inside the packet, Ethernet
//! payload), maps the VNI to its VPC, strips the outer headers, and sends the inner frame
//! to `security-group` if its destination MAC is a port of that VPC on this host, or to
//! `gateway-output` if it is the gateway MAC and this host is a gateway. The source host
//! routed the packet already (TTL and MACs are final). Traces continue here for probes (the
//! Geneve trace option) and start here for packets whose inner frame a trace watch takes.

use crate::buf::PacketBuf;
use crate::graph::{DropReason, Frame, LastLookup, NodeCtx, NodeId, Outputs};
use crate::overlay::gateway::GATEWAY_MAC;
use crate::overlay::Location;
use crate::trace::Action;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4};
use crate::wire::geneve;
use crate::wire::ipv4;

use super::super::L3;

/// Length of the UDP header.
const UDP_LEN: usize = 8;

/// True if some packet of `frame` may start a trace here: it carries Geneve options (where
/// a probe's trace id travels). The graph runs the traced variant of this node for such a
/// frame and the untraced one otherwise (our hosts send options only with probes). One
/// byte per packet, in the header line the node reads next anyway.
#[inline]
pub fn may_start_traces<B: PacketBuf>(frame: &Frame<B>) -> bool {
    frame.iter().any(|pkt| {
        let d = pkt.buf.data();
        let hl = d.get(L3).map_or(0, |b| usize::from(b & 0x0f) * 4);
        d.get(L3 + hl + UDP_LEN).is_some_and(|b| b & 0x3f != 0)
    })
}

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let ov = &*ctx.snap.overlay;
    let watching = out.watching_overlay();
    // The frame's last VNI → VPC and (inner MAC, VPC) → local port (a frame's packets
    // mostly come from few VPCs and go to few ports).
    let mut last_vpc = LastLookup::new();
    let mut last_dest = LastLookup::new();
    for mut pkt in input.drain(..) {
        let (outer_len, hl, outer_src) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            let src = crate::wire::be32(pkt.buf.data(), L3 + 12);
            (usize::from(ip.total_len()), ip.header_len(), src)
        };
        let gnv_off = L3 + hl + UDP_LEN;
        let end = (L3 + outer_len).min(pkt.buf.len());
        let parsed = pkt
            .buf
            .data()
            .get(gnv_off..end)
            .and_then(|b| geneve::Packet::new_checked(b).ok())
            .filter(|g| g.protocol_type() == geneve::PROTO_ETHERNET)
            .map(|g| {
                // The untraced variant runs only on frames without Geneve options
                // ([`may_start_traces`]).
                let trace = if TR { g.trace_id() } else { None };
                (g.vni(), g.payload_offset(), trace)
            });
        let Some((vni, glen, trace)) = parsed else {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveMalformed);
            continue;
        };
        let Some(vpc) = *last_vpc.get(vni, || ov.by_vni.get(&vni).copied()) else {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveUnknownVni);
            continue;
        };
        if let Some(id) = trace {
            let port = pkt.meta.rx_port;
            let action = Action::Received {
                port,
                from: outer_src,
                vni,
            };
            // A probe must never reach a VM untraced (it would be delivered).
            if !out.begin_trace(&mut pkt.meta, id, action) && crate::trace::is_probe(id) {
                out.drop(pkt.buf, pkt.meta, DropReason::TraceSlotsFull);
                continue;
            }
        }
        let inner_off = gnv_off + glen;
        let inner_len = end - inner_off.min(end);
        if inner_len < ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveMalformed);
            continue;
        }
        let tail = pkt.buf.len() - end;
        if !pkt.buf.adj(inner_off) || !pkt.buf.trim(tail) {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveMalformed);
            continue;
        }
        if watching && !out.traced(&pkt.meta) {
            // Real traffic from another host: a trace watch may take it on its inner frame.
            out.watch_inner(&mut pkt.meta, pkt.buf.data(), outer_src, vni);
        }
        let d = pkt.buf.data();
        let dst_mac: [u8; 6] = crate::wire::array(d, 0);
        let dest = *last_dest.get((dst_mac, vpc), || {
            ov.endpoint_by_mac(&dst_mac).filter(|&e| {
                let e = &ov.endpoints[e as usize];
                e.vpc == vpc && matches!(e.at, Location::Local(_))
            })
        });
        let Some(dest) = dest else {
            if dst_mac == GATEWAY_MAC && ov.gateway.is_some() {
                // North-south: a VM's packet for its VPC's gateway group (this host).
                pkt.meta.nh_ip = u32::from(vpc);
                out.to(NodeId::GatewayOutput, pkt.buf, pkt.meta);
            } else {
                out.drop(pkt.buf, pkt.meta, DropReason::GeneveNoLocalPort);
            }
            continue;
        };
        if crate::wire::be16(d, 12) != ETHERTYPE_IPV4 {
            out.drop(pkt.buf, pkt.meta, DropReason::OverlayUnsupported);
            continue;
        }
        let Ok(total) = ipv4::Packet::new_checked(&d[L3..]).map(|ip| usize::from(ip.total_len()))
        else {
            out.drop(pkt.buf, pkt.meta, DropReason::OverlayBadIp4);
            continue;
        };
        // Padding after the inner packet (a short frame padded by its sender) is cut.
        let surplus = d.len() - L3 - total;
        if surplus > 0 {
            pkt.buf.trim(surplus);
        }
        pkt.meta.nh_ip = u32::from(vpc);
        pkt.meta.adj = dest;
        out.to(NodeId::SecurityGroup, pkt.buf, pkt.meta);
    }
}
