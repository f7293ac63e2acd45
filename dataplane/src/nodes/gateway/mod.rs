//! `gateway-output`, and the way back: a gateway host's north-south path for the VMs
//! behind the overlay ([`crate::overlay::gateway`]).
//!
//! - Out: `geneve-input` hands over the frames compute hosts send to the gateway MAC (the
//!   source host's VPC router already routed them: TTL decremented, security groups
//!   passed). The destination must route out of the external port by this host's routes;
//!   the VPC's source NAT rule or the VM's floating IP rewrites the source
//!   ([`crate::nat::node::to_outside`], sessions filed under the VNI), and the packet is
//!   forwarded like any routed one (TTL, MTU, ARP, MACs). A destination that is one of the
//!   NAT addresses is hairpinned: translated back at once and sent into its VPC.
//! - Back: `ip4-forward` translates replies and new connections to floating IPs
//!   ([`crate::nat::node::to_inside`]); [`to_vpc`] routes them to the VM's port — TTL, the
//!   VM's MAC — and `overlay-output` encapsulates them towards the VM's host. What cannot go
//!   in (TTL 1, larger than the overlay MTU) is answered with an ICMP error
//!   ([`refuse_to_vpc`]).
//!
//! With several workers, a packet whose session another worker owns
//! ([`crate::nat::owner`]) is handed to it just before the session lookup and re-enters its
//! `gateway-output`; a hairpinned packet, once its source is translated, goes on to the
//! worker owning the session of its destination (flagged [`Meta::nat_hairpin`]), which only
//! translates it back into the VPC.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, Meta, NodeCtx, NodeId, Outputs};
use crate::nat::node as nat;
use crate::overlay::ROUTER_MAC;
use crate::state::snapshot::Adjacency;
use crate::trace::Detail;
use crate::wire::icmp::{unreach, DEST_UNREACHABLE, TIME_EXCEEDED};
use crate::wire::ipv4;

use super::overlay::{build_router_icmp, inner_flow, vpc_of};
use super::{ip4_rewrite, L3};

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let snap = ctx.snap;
    let ov = &*snap.overlay;
    let cfg = &*snap.nat;
    let workers = out.workers();
    // Fetch the frame's sessions first (index lines, then sessions): the misses overlap.
    if let Some(table) = ctx.env.nat.as_ref() {
        let hashes = &mut ctx.env.scratch.hashes;
        for (h, pkt) in hashes.iter_mut().zip(input.iter()) {
            *h = match ov.vpcs.get(usize::from(vpc_of(&pkt.meta))) {
                Some(v) => {
                    let ip = pkt.buf.data().get(L3..).unwrap_or_default();
                    nat::prefetch_index(table, ip, false, v.vni)
                }
                None => 0,
            };
        }
        // Each hash becomes the slot its session probably is in: the lookup tries it first.
        for h in hashes.iter_mut().take(input.len()) {
            *h = u64::from(nat::prefetch_session(table, false, *h));
        }
    }
    for (i, mut pkt) in input.drain(..).enumerate() {
        if pkt.meta.nat_hairpin() {
            // Handed in by the worker that translated its source: only the way back in.
            pkt.meta.set_nat_hairpin(false);
            hairpin_in(ctx, out, pkt.buf, pkt.meta);
            continue;
        }
        let vpc = vpc_of(&pkt.meta);
        let Some(vni) = ov.vpcs.get(usize::from(vpc)).map(|v| v.vni) else {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveUnknownVni);
            continue;
        };
        let Some(outside) = cfg.outside_port.filter(|_| ctx.env.nat.is_some()) else {
            out.drop(pkt.buf, pkt.meta, DropReason::NatNoRule);
            continue;
        };
        let (dst, ttl) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            (ip.dst(), ip.ttl())
        };
        if ttl <= 1 {
            time_exceeded(ctx, out, pkt.buf, pkt.meta, vpc);
            continue;
        }
        let hairpin = cfg.is_outside_address(dst);
        let route = if hairpin {
            None
        } else {
            let nh = snap.fib.lookup(dst);
            match nh.and_then(|nh| Some((nh, *snap.adjacencies.get(nh as usize)?))) {
                Some((
                    nh,
                    a @ (Adjacency::Attached { port } | Adjacency::Gateway { port, .. }),
                )) if port == outside => Some((nh, a)),
                _ => {
                    out.drop(pkt.buf, pkt.meta, DropReason::GatewayNoExternalRoute);
                    continue;
                }
            }
        };
        if workers > 1 {
            let owner = crate::nat::owner::outbound(cfg, vni, &pkt.buf.data()[L3..], workers);
            if let Some(w) = owner.and_then(|w| out.other_worker(w)) {
                out.handoff(w, pkt.buf, pkt.meta);
                continue;
            }
        }
        let before = out.traced(&pkt.meta).then(|| inner_flow(pkt.buf.data()));
        let Some(table) = ctx.env.nat.as_mut() else {
            out.drop(pkt.buf, pkt.meta, DropReason::NatNoRule);
            continue;
        };
        let now = ctx.now_ns;
        let hint = ctx.env.scratch.hashes[i] as u32;
        match nat::to_outside(cfg, table, vni, &mut pkt.buf.data_mut()[L3..], now, hint) {
            Ok(true) => {}
            Ok(false) => {
                out.drop(pkt.buf, pkt.meta, DropReason::NatNoRule);
                continue;
            }
            Err(reason) => {
                out.drop(pkt.buf, pkt.meta, reason);
                continue;
            }
        }
        if let Some(b) = before {
            let a = inner_flow(pkt.buf.data());
            let detail = Detail::Nat {
                from_ip: b.src,
                from_port: b.sport,
                to_ip: a.src,
                to_port: a.sport,
            };
            out.note(&pkt.meta, detail);
        }
        match route {
            Some((nh, adj)) => {
                pkt.meta.adj = nh;
                ip4_rewrite::rewrite(ctx, pkt.buf, pkt.meta, adj, out);
            }
            None => {
                if workers > 1 {
                    let owner = crate::nat::owner::inbound(cfg, &pkt.buf.data()[L3..], workers);
                    if let Some(w) = owner.and_then(|w| out.other_worker(w)) {
                        pkt.meta.set_nat_hairpin(true);
                        out.handoff(w, pkt.buf, pkt.meta);
                        continue;
                    }
                }
                hairpin_in(ctx, out, pkt.buf, pkt.meta);
            }
        }
    }
}

/// The second half of a hairpin: a packet whose source NAT is done, addressed to one of
/// the NAT addresses, translated back into its VPC like a packet from outside.
fn hairpin_in<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    mut buf: B,
    meta: Meta,
) {
    let Some(table) = ctx.env.nat.as_mut() else {
        out.drop(buf, meta, DropReason::NatNoRule);
        return;
    };
    let ip = &mut buf.data_mut()[L3..];
    match nat::to_inside(&ctx.snap.nat, table, ip, ctx.now_ns, nat::NO_HINT) {
        Ok(Some(d)) => to_vpc(ctx, out, buf, meta, d.vpc),
        Ok(None) => out.drop(buf, meta, DropReason::NatInsideUnknown),
        Err(reason) => out.drop(buf, meta, reason),
    }
}

/// Sends a packet NAT translated back to an address of VPC `vni` to that address's port:
/// one router hop (TTL), the port's MAC from the router MAC, then `overlay-output`.
#[inline]
pub fn to_vpc<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    mut buf: B,
    mut meta: Meta,
    vni: u32,
) {
    let ov = &*ctx.snap.overlay;
    let Some(&vpc) = ov.by_vni.get(&vni) else {
        out.drop(buf, meta, DropReason::NatInsideUnknown);
        return;
    };
    let (dst, ttl) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[L3..]);
        (ip.dst(), ip.ttl())
    };
    let Some((e, mac)) = ov
        .endpoint_by_ip(vpc, dst)
        .and_then(|e| Some((e, ov.endpoint(e)?.mac)))
    else {
        out.drop(buf, meta, DropReason::NatInsideUnknown);
        return;
    };
    // `ip4-forward` sends TTL 1 here only for what cannot be quoted as it was sent (an
    // ICMP error, a fragment; see `refuse_to_vpc`): counted, not answered.
    if ttl <= 1 {
        out.drop(buf, meta, DropReason::Ip4TtlExpired);
        return;
    }
    let d = buf.data_mut();
    ipv4::Packet::new_unchecked(&mut d[L3..]).decrement_ttl();
    d[0..6].copy_from_slice(&mac);
    d[6..12].copy_from_slice(&ROUTER_MAC);
    meta.nh_ip = u32::from(vpc);
    meta.adj = e;
    out.to(NodeId::OverlayOutput, buf, meta);
}

/// True if a packet from the external network (`frame` from its Ethernet header) could
/// not go into the overlay as it is: TTL 1 or less, or longer than `overlay_mtu` (`None`:
/// this host is no gateway). Two header bytes read per inbound packet.
#[inline(always)]
pub fn refusal_needed(frame: &[u8], overlay_mtu: Option<u16>) -> bool {
    let Some(mtu) = overlay_mtu else {
        return false;
    };
    let ip = ipv4::Packet::new_unchecked(&frame[L3..]);
    ip.ttl() <= 1 || ip.total_len() > mtu
}

/// An inbound packet for a VM behind the overlay that the gateway cannot pass on, already
/// translated by `ip4-forward`: its TTL ran out here, or it is larger than the overlay
/// (VM) MTU. Like a router, the gateway answers the external sender — time exceeded, or
/// fragmentation needed with the overlay MTU when DF is set (without DF it is dropped:
/// the dataplane does not fragment) — quoting the packet as it was sent: its destination
/// goes back to the NAT address and port `ip4-forward` kept in `meta` (`nh_ip`, `adj`).
/// The error leaves by the external port, from that port's address, untranslated.
pub fn refuse_to_vpc<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    mut buf: B,
    mut meta: Meta,
) {
    let mtu = ctx.snap.overlay.mtu;
    let (ttl, df) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[L3..]);
        (ip.ttl(), ip.dont_frag())
    };
    let req = if ttl <= 1 {
        IcmpRequest {
            msg_type: TIME_EXCEEDED,
            code: 0,
            mtu: 0,
            reason: DropReason::Ip4TtlExpired,
        }
    } else if df {
        IcmpRequest {
            msg_type: DEST_UNREACHABLE,
            code: unreach::FRAG_NEEDED,
            mtu,
            reason: DropReason::Ip4MtuExceeded,
        }
    } else {
        out.drop(buf, meta, DropReason::Ip4FragmentationUnsupported);
        return;
    };
    let (sent_to, port) = (meta.nh_ip, meta.adj as u16);
    if nat::translate_back(&mut buf.data_mut()[L3..], sent_to, port).is_err() {
        out.drop(buf, meta, req.reason);
        return;
    }
    meta.set_icmp(req);
    out.to(NodeId::Ip4IcmpError, buf, meta);
}

/// A VM's packet whose TTL ran out at the gateway: time-exceeded from the VM's subnet
/// gateway address, back over the overlay to the VM's port.
fn time_exceeded<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    buf: B,
    mut meta: Meta,
    vpc: u16,
) {
    let ov = &*ctx.snap.overlay;
    let src = ipv4::Packet::new_unchecked(&buf.data()[L3..]).src();
    let sender = ov
        .endpoint_by_ip(vpc, src)
        .and_then(|e| Some((e, ov.endpoint(e)?)));
    let Some((e, (from, mac))) = sender.and_then(|(e, ep)| Some((e, (ov.gateway_of(ep)?, ep.mac))))
    else {
        out.drop(buf, meta, DropReason::Ip4TtlExpired);
        return;
    };
    meta.adj = e;
    let req = IcmpRequest {
        msg_type: TIME_EXCEEDED,
        code: 0,
        mtu: 0,
        reason: DropReason::Ip4TtlExpired,
    };
    if let Some((buf, meta)) = build_router_icmp(ctx, out, buf, meta, req, from, mac) {
        out.to(NodeId::OverlayOutput, buf, meta);
    }
}

#[cfg(test)]
mod tests;
