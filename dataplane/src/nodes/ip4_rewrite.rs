//! `ip4-rewrite`: the forwarding decision made real — port state, TTL (time-exceeded),
//! MTU (fragmentation-needed), next-hop MAC (or park the packet in the hold queue and ask
//! for resolution), TTL decrement with incremental checksum, MAC rewrite, then transmit.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{ControlEvent, DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::Adjacency;
use crate::wire::icmp::{unreach, DEST_UNREACHABLE, TIME_EXCEEDED};
use crate::wire::ipv4;

use super::L3;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B>,
) {
    let snap = ctx.snap;
    for mut pkt in input.drain(..) {
        let (port, nh_ip, mac) = match snap.adjacencies.get(pkt.meta.adj as usize) {
            Some(Adjacency::Gateway { port, gw, mac }) => (*port, u32::from(*gw), *mac),
            Some(Adjacency::Attached { port }) => {
                let b = pkt.buf.data();
                let o = L3 + 16;
                (
                    *port,
                    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]),
                    None,
                )
            }
            _ => {
                out.drop(pkt.buf, DropReason::NoRoute);
                continue;
            }
        };
        let Some(pv) = snap.ports.get(port as usize).filter(|p| p.up) else {
            out.drop(pkt.buf, DropReason::PortDown);
            continue;
        };
        let (ttl, total, df) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            (ip.ttl(), ip.total_len(), ip.dont_frag())
        };
        if !pkt.meta.local_origin && ttl <= 1 {
            pkt.meta.set_icmp(IcmpRequest {
                msg_type: TIME_EXCEEDED,
                code: 0,
                mtu: 0,
                reason: DropReason::Ip4TtlExpired,
            });
            out.to(NodeId::Ip4IcmpError, pkt.buf, pkt.meta);
            continue;
        }
        if total > pv.mtu {
            if df {
                pkt.meta.set_icmp(IcmpRequest {
                    msg_type: DEST_UNREACHABLE,
                    code: unreach::FRAG_NEEDED,
                    mtu: pv.mtu,
                    reason: DropReason::Ip4MtuExceeded,
                });
                out.to(NodeId::Ip4IcmpError, pkt.buf, pkt.meta);
            } else {
                out.drop(pkt.buf, DropReason::Ip4FragmentationUnsupported);
            }
            continue;
        }
        let Some(mac) = mac.or_else(|| snap.neighbour(port, nh_ip)) else {
            pkt.meta.nh_ip = nh_ip;
            if out.hold(pkt.buf, pkt.meta, port, nh_ip, ctx.now_ns) {
                ctx.env
                    .event(ControlEvent::NeighbourMiss { port, ip: nh_ip });
            }
            continue;
        };
        let d = pkt.buf.data_mut();
        if !pkt.meta.local_origin {
            ipv4::Packet::new_unchecked(&mut d[L3..]).decrement_ttl();
        }
        d[0..6].copy_from_slice(&mac);
        d[6..12].copy_from_slice(&pv.mac);
        out.tx(port, pkt.buf, pkt.meta);
    }
}
