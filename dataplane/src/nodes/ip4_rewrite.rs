//! The rewrite step that `ip4-forward` and `ip4-lookup` run on every routed packet: port
//! state, TTL (time-exceeded), MTU (fragmentation-needed), next-hop MAC (or park the
//! packet in the hold queue and ask for resolution), TTL decrement with incremental
//! checksum, MAC rewrite, then transmit.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{ControlEvent, DropReason, Meta, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::Adjacency;
use crate::wire::icmp::{unreach, DEST_UNREACHABLE, TIME_EXCEEDED};
use crate::wire::ipv4;

use super::L3;

/// Forwards one packet towards `adj` (its index is in `meta.adj`): port state, TTL, MTU,
/// next-hop MAC (or the hold queue), TTL decrement, MAC rewrite, transmit.
#[inline(always)]
pub fn rewrite<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    mut buf: B,
    mut meta: Meta,
    adj: Adjacency,
    out: &mut Outputs<'_, B, TR>,
) {
    let snap = ctx.snap;
    let (port, nh_ip, mac) = match adj {
        Adjacency::Gateway { port, gw, mac } => (port, u32::from(gw), mac),
        Adjacency::Attached { port } => (port, crate::wire::be32(buf.data(), L3 + 16), None),
        _ => {
            out.drop(buf, meta, DropReason::NoRoute);
            return;
        }
    };
    let Some(pv) = snap.ports.get(port as usize).filter(|p| p.up) else {
        out.drop(buf, meta, DropReason::PortDown);
        return;
    };
    let (ttl, total, df) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[L3..]);
        (ip.ttl(), ip.total_len(), ip.dont_frag())
    };
    if !meta.local_origin() && ttl <= 1 {
        meta.set_icmp(IcmpRequest {
            msg_type: TIME_EXCEEDED,
            code: 0,
            mtu: 0,
            reason: DropReason::Ip4TtlExpired,
        });
        out.to(NodeId::Ip4IcmpError, buf, meta);
        return;
    }
    if total > pv.mtu {
        if df {
            meta.set_icmp(IcmpRequest {
                msg_type: DEST_UNREACHABLE,
                code: unreach::FRAG_NEEDED,
                mtu: pv.mtu,
                reason: DropReason::Ip4MtuExceeded,
            });
            out.to(NodeId::Ip4IcmpError, buf, meta);
        } else {
            out.drop(buf, meta, DropReason::Ip4FragmentationUnsupported);
        }
        return;
    }
    let Some(mac) = mac.or_else(|| snap.neighbour(port, nh_ip)) else {
        meta.nh_ip = nh_ip;
        if out.hold(buf, meta, port, nh_ip, ctx.now_ns) {
            ctx.env
                .event(ControlEvent::NeighbourMiss { port, ip: nh_ip });
        }
        return;
    };
    let d = buf.data_mut();
    if !meta.local_origin() {
        ipv4::Packet::new_unchecked(&mut d[L3..]).decrement_ttl();
    }
    d[0..6].copy_from_slice(&mac);
    d[6..12].copy_from_slice(&pv.mac);
    out.tx(port, buf, meta);
}
