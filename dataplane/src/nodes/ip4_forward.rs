//! `ip4-forward`: the IPv4 forwarding path in one node, for speed — input checks
//! ([`super::ip4_input::check`]), one bulk FIB lookup for the frame, and the rewrite
//! ([`super::ip4_rewrite::rewrite`]) — so a forwarded packet is handled in one pass and moved
//! once, to its port. Everything else leaves through the same edges the separate nodes
//! use: drops with their reasons, `ip4-local`, `ip4-icmp-error`, the hold queue.

use crate::buf::PacketBuf;
use crate::graph::{DropReason, Frame, NodeCtx, Outputs};

use super::{ip4_input, ip4_lookup, ip4_rewrite};

/// Marks a packet that failed the input checks in the lookup key array's companion.
const OK: u8 = u8::MAX;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B>,
) {
    let n = input.len();
    let scratch = &mut *ctx.env.scratch;
    // Pass 1: check every header, collect destinations.
    for (i, pkt) in input.iter_mut().enumerate() {
        match ip4_input::check(&mut pkt.buf) {
            Ok(dst) => {
                scratch.keys[i] = dst;
                scratch.flags[i] = OK;
            }
            Err(reason) => {
                scratch.keys[i] = 0;
                scratch.flags[i] = reason as u8;
            }
        }
    }
    ctx.snap
        .fib
        .lookup_bulk(&scratch.keys[..n], &mut scratch.values[..n]);
    // Pass 2: act on the verdicts.
    for (i, pkt) in input.drain(..).enumerate() {
        let flag = ctx.env.scratch.flags[i];
        if flag != OK {
            let reason = DropReason::ALL
                .get(usize::from(flag))
                .copied()
                .unwrap_or(DropReason::FrameOverflow);
            out.drop(pkt.buf, reason);
            continue;
        }
        let nh = ctx.env.scratch.values[i];
        if let Some((buf, meta, adj)) = ip4_lookup::route(ctx.snap, nh, pkt.buf, pkt.meta, out) {
            ip4_rewrite::rewrite(ctx, buf, meta, adj, out);
        }
    }
}
