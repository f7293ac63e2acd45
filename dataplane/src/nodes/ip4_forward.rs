//! `ip4-forward`: the IPv4 forwarding path in one node, for speed — input checks
//! ([`super::ip4_input::check`]), one bulk FIB lookup for the frame, and the rewrite
//! ([`super::ip4_rewrite::rewrite`]) — so a forwarded packet is handled in one pass and moved
//! once, to its port. Everything else leaves through the same edges the separate nodes
//! use: drops with their reasons, `ip4-local`, `ip4-icmp-error`, the hold queue.
//!
//! On a NAT gateway ([`crate::nat::node`]) packets from the outside port to an outside
//! address get their inside destination back before the lookup, and packets leaving by the
//! outside port get their outside source after it. Inbound packets for a VM that the
//! gateway cannot pass on (TTL 1, too big for the overlay) are answered with an ICMP error
//! quoting them as they were sent ([`gateway::refuse_to_vpc`]).
//!
//! With several workers, a NAT packet whose session another worker owns
//! ([`crate::nat::owner`]) is handed to it before the session lookup — inbound ones after
//! the input checks, outbound ones after the route lookup — and re-enters its graph here.

use crate::buf::PacketBuf;
use crate::graph::{DropReason, Frame, NodeCtx, Outputs};

use super::{gateway, ip4_input, ip4_lookup, ip4_rewrite, L3};
use crate::nat::node as nat;
use crate::state::snapshot::Adjacency;

/// Marks a packet that passed the input checks in the lookup key array's companion.
const OK: u8 = u8::MAX;
/// Marks a packet NAT translated back to a VM behind the overlay (its key is the VNI).
const TO_VPC: u8 = u8::MAX - 1;
/// Marks a packet NAT translated towards a VM that the gateway answers with an ICMP error
/// instead (TTL 1, or too big for the overlay): its destination as sent is in its metadata.
const TO_VPC_REFUSED: u8 = u8::MAX - 2;
/// Marks an inbound NAT packet another worker owns (its key is that worker).
const HANDOFF: u8 = u8::MAX - 3;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let n = input.len();
    let nat_cfg = &*ctx.snap.nat;
    let outside = nat_cfg.outside_port;
    let scratch = &mut *ctx.env.scratch;
    let nat = &mut ctx.env.nat;
    let now_ns = ctx.now_ns;
    let workers = out.workers();
    // On a gateway, inbound packets for VMs must fit the overlay's (VM) MTU.
    let overlay_mtu = ctx
        .snap
        .overlay
        .gateway
        .as_ref()
        .map(|_| ctx.snap.overlay.mtu);
    // On a NAT gateway: fetch the frame's sessions first, index lines then sessions, so
    // that their cache misses overlap (outbound packets are looked up by inside key, in
    // the routed VPC when it has rules; a packet that turns out not to need NAT only cost a
    // parse).
    if let (Some(o), Some(table)) = (outside, nat.as_ref()) {
        let routed = nat_cfg.has_rules_for(nat::ROUTED_VPC);
        for (h, pkt) in scratch.hashes.iter_mut().zip(input.iter()) {
            let inbound = pkt.meta.rx_port == o;
            *h = if inbound || routed {
                let ip = pkt.buf.data().get(L3..).unwrap_or_default();
                nat::prefetch_index(table, ip, inbound, nat::ROUTED_VPC)
            } else {
                0
            };
        }
        // Each hash becomes the slot its session probably is in: the lookup tries it first.
        for (h, pkt) in scratch.hashes.iter_mut().zip(input.iter()) {
            *h = u64::from(nat::prefetch_session(table, pkt.meta.rx_port == o, *h));
        }
    }
    // Pass 1: check every header, collect destinations.
    for (i, pkt) in input.iter_mut().enumerate() {
        match ip4_input::check(&mut pkt.buf) {
            Ok(dst) => {
                scratch.keys[i] = dst;
                scratch.flags[i] = OK;
                if let (Some(o), Some(table)) = (outside, nat.as_mut()) {
                    if pkt.meta.rx_port == o {
                        if workers > 1 {
                            let owner =
                                crate::nat::owner::inbound(nat_cfg, &pkt.buf.data()[L3..], workers);
                            if let Some(w) = owner.and_then(|w| out.other_worker(w)) {
                                scratch.keys[i] = w as u32;
                                scratch.flags[i] = HANDOFF;
                                continue;
                            }
                        }
                        let before = out
                            .traced(&pkt.meta)
                            .then(|| super::overlay::inner_flow(pkt.buf.data()));
                        // A packet the gateway may have to refuse keeps its destination as
                        // sent, so the ICMP error can quote it (rare: checked on two bytes).
                        let sent_to = gateway::refusal_needed(pkt.buf.data(), overlay_mtu)
                            .then(|| crate::nat::translate::tuple(&pkt.buf.data()[L3..]).ok())
                            .flatten()
                            .map(|t| (t.dst, t.dport));
                        let hint = scratch.hashes[i] as u32;
                        let ip = &mut pkt.buf.data_mut()[L3..];
                        let r = nat::to_inside(nat_cfg, table, ip, now_ns, hint);
                        if let (Some(b), Ok(Some(_))) = (before, &r) {
                            let a = super::overlay::inner_flow(pkt.buf.data());
                            let detail = crate::trace::Detail::Nat {
                                from_ip: b.dst,
                                from_port: b.dport,
                                to_ip: a.dst,
                                to_port: a.dport,
                            };
                            out.note(&pkt.meta, detail);
                        }
                        match r {
                            Ok(Some(d)) if d.vpc == nat::ROUTED_VPC => scratch.keys[i] = d.ip,
                            Ok(Some(d)) => {
                                scratch.keys[i] = d.vpc;
                                scratch.flags[i] = TO_VPC;
                                if let Some((ip, port)) = sent_to {
                                    pkt.meta.nh_ip = ip;
                                    pkt.meta.adj = u32::from(port);
                                    scratch.flags[i] = TO_VPC_REFUSED;
                                }
                            }
                            Ok(None) => {}
                            Err(reason) => scratch.flags[i] = reason as u8,
                        }
                    }
                }
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
        if flag == HANDOFF {
            let owner = ctx.env.scratch.keys[i] as usize;
            out.handoff(owner, pkt.buf, pkt.meta);
            continue;
        }
        if flag == TO_VPC {
            let vni = ctx.env.scratch.keys[i];
            gateway::to_vpc(ctx, out, pkt.buf, pkt.meta, vni);
            continue;
        }
        if flag == TO_VPC_REFUSED {
            gateway::refuse_to_vpc(ctx, out, pkt.buf, pkt.meta);
            continue;
        }
        if flag != OK {
            let reason = DropReason::ALL
                .get(usize::from(flag))
                .copied()
                .unwrap_or(DropReason::FrameOverflow);
            out.drop(pkt.buf, pkt.meta, reason);
            continue;
        }
        let nh = ctx.env.scratch.values[i];
        let mut meta = pkt.meta;
        if let Some((mut buf, adj)) = ip4_lookup::route(ctx.snap, nh, pkt.buf, &mut meta, out) {
            if let (Some(o), Some(table)) = (outside, ctx.env.nat.as_mut()) {
                let egress = match adj {
                    Adjacency::Attached { port } | Adjacency::Gateway { port, .. } => Some(port),
                    _ => None,
                };
                if egress == Some(o) && meta.rx_port != o {
                    if workers > 1 {
                        let ip = &buf.data()[L3..];
                        let owner = crate::nat::owner::outbound(
                            &ctx.snap.nat,
                            nat::ROUTED_VPC,
                            ip,
                            workers,
                        );
                        if let Some(w) = owner.and_then(|w| out.other_worker(w)) {
                            out.handoff(w, buf, meta);
                            continue;
                        }
                    }
                    let ip = &mut buf.data_mut()[L3..];
                    let hint = ctx.env.scratch.hashes[i] as u32;
                    let vpc = nat::ROUTED_VPC;
                    if let Err(reason) =
                        nat::to_outside(&ctx.snap.nat, table, vpc, ip, ctx.now_ns, hint)
                    {
                        out.drop(buf, meta, reason);
                        continue;
                    }
                }
            }
            ip4_rewrite::rewrite(ctx, buf, meta, adj, out);
        }
    }
}
