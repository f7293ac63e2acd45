//! `ip4-lookup`: longest-prefix match for the whole frame in one bulk FIB lookup, then
//! each packet goes where its adjacency says (see [`route`]) and forwarded packets are
//! rewritten in place. On the forwarding path `ip4-forward` does this itself; this node
//! routes the packets the dataplane builds (ICMP errors, echo replies) and packets released
//! from the hold queue.

use crate::buf::PacketBuf;
use crate::fib::Fib;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, Meta, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::{Adjacency, Snapshot};
use crate::wire::icmp::{unreach, DEST_UNREACHABLE};

use super::L3;

/// Offset of the destination address in the frame.
pub const DST_OFF: usize = L3 + 16;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let n = input.len();
    let scratch = &mut *ctx.env.scratch;
    for (d, pkt) in scratch.keys.iter_mut().zip(input.iter()) {
        *d = crate::wire::be32(pkt.buf.data(), DST_OFF);
    }
    ctx.snap
        .fib
        .lookup_bulk(&scratch.keys[..n], &mut scratch.values[..n]);
    for (i, pkt) in input.drain(..).enumerate() {
        let nh = ctx.env.scratch.values[i];
        let mut meta = pkt.meta;
        if let Some((buf, adj)) = route(ctx.snap, nh, pkt.buf, &mut meta, out) {
            super::ip4_rewrite::rewrite(ctx, buf, meta, adj, out);
        }
    }
}

/// Acts on the FIB result `nh` for one packet: local delivery, a counted blackhole, or an
/// ICMP unreachable. For a forwarding adjacency it records it in the metadata and hands the
/// packet back with the adjacency, so the caller can rewrite it (`ip4-forward`) or queue it
/// (`ip4-lookup`). The metadata is updated in place rather than returned: returning it in
/// the tuple made the compiler copy it through the stack in pieces of different widths, a
/// store-forwarding stall that cost a fifth of the routing path's time.
#[inline(always)]
pub fn route<B: PacketBuf, const TR: bool>(
    snap: &Snapshot,
    nh: u32,
    buf: B,
    meta: &mut Meta,
    out: &mut Outputs<'_, B, TR>,
) -> Option<(B, Adjacency)> {
    let adj = if nh == Fib::MISS {
        None
    } else {
        snap.adjacencies.get(nh as usize).copied()
    };
    let (code, reason) = match adj {
        Some(a @ (Adjacency::Attached { .. } | Adjacency::Gateway { .. })) => {
            meta.adj = nh;
            return Some((buf, a));
        }
        Some(Adjacency::Local) if !meta.local_origin() => {
            out.to(NodeId::Ip4Local, buf, *meta);
            return None;
        }
        Some(Adjacency::Blackhole) => {
            out.drop(buf, *meta, DropReason::RouteBlackhole);
            return None;
        }
        Some(Adjacency::Unreachable) => (unreach::HOST, DropReason::RouteUnreachable),
        // A packet we built that routes back to ourselves, or no route at all.
        Some(Adjacency::Local) | None => (unreach::NET, DropReason::NoRoute),
    };
    meta.set_icmp(IcmpRequest {
        msg_type: DEST_UNREACHABLE,
        code,
        mtu: 0,
        reason,
    });
    out.to(NodeId::Ip4IcmpError, buf, *meta);
    None
}
