//! `ip4-lookup`: longest-prefix match for the whole frame in one bulk FIB lookup, then
//! each packet goes where its adjacency says: local delivery, rewrite towards a port, a
//! counted blackhole, or an ICMP unreachable.

use crate::buf::PacketBuf;
use crate::fib::Fib;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::Adjacency;
use crate::wire::icmp::{unreach, DEST_UNREACHABLE};

use super::L3;

/// Offset of the destination address in the frame.
const DST_OFF: usize = L3 + 16;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B>,
) {
    let n = input.len();
    let scratch = &mut *ctx.env.scratch;
    let (dsts, nhs) = (&mut scratch.keys, &mut scratch.values);
    for (d, pkt) in dsts.iter_mut().zip(input.iter()) {
        let b = pkt.buf.data();
        *d = u32::from_be_bytes([b[DST_OFF], b[DST_OFF + 1], b[DST_OFF + 2], b[DST_OFF + 3]]);
    }
    ctx.snap.fib.lookup_bulk(&dsts[..n], &mut nhs[..n]);
    let adjs = &ctx.snap.adjacencies;
    for (i, mut pkt) in input.drain(..).enumerate() {
        let nh = nhs[i];
        let adj = if nh == Fib::MISS {
            None
        } else {
            adjs.get(nh as usize)
        };
        match adj {
            Some(Adjacency::Attached { .. } | Adjacency::Gateway { .. }) => {
                pkt.meta.adj = nh;
                out.to(NodeId::Ip4Rewrite, pkt.buf, pkt.meta);
            }
            Some(Adjacency::Local) if !pkt.meta.local_origin => {
                out.to(NodeId::Ip4Local, pkt.buf, pkt.meta)
            }
            Some(Adjacency::Blackhole) => out.drop(pkt.buf, DropReason::RouteBlackhole),
            Some(Adjacency::Unreachable) => {
                pkt.meta.set_icmp(IcmpRequest {
                    msg_type: DEST_UNREACHABLE,
                    code: unreach::HOST,
                    mtu: 0,
                    reason: DropReason::RouteUnreachable,
                });
                out.to(NodeId::Ip4IcmpError, pkt.buf, pkt.meta);
            }
            // A packet we built that routes back to ourselves, or no route at all.
            Some(Adjacency::Local) | None => {
                pkt.meta.set_icmp(IcmpRequest {
                    msg_type: DEST_UNREACHABLE,
                    code: unreach::NET,
                    mtu: 0,
                    reason: DropReason::NoRoute,
                });
                out.to(NodeId::Ip4IcmpError, pkt.buf, pkt.meta);
            }
        }
    }
}
