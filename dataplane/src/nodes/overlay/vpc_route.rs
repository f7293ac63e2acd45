//! `vpc-route`: the VPC's distributed router, run on the host where the packet starts.
//! Looks the destination up in the sender's VPC (a port's address, else the longest
//! subnet or static route), answers pings to the gateway addresses itself, decrements the
//! TTL once (time-exceeded from the gateway at 1), rewrites the MACs (router MAC → the
//! destination port's MAC) and hands the packet to `security-group`. Errors a router
//! sends (net/host unreachable, time exceeded) come from the sender's subnet gateway.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, LastLookup, NodeCtx, NodeId, Outputs};
use crate::overlay::{RouteResult, ROUTER_MAC};
use crate::trace::Detail;
use crate::wire::icmp::{self, unreach, DEST_UNREACHABLE, ECHO_REQUEST, TIME_EXCEEDED};
use crate::wire::ipv4::{self, PROTO_ICMP};

use super::super::ip4_local::LOCAL_TTL;
use super::super::L3;
use super::{router_icmp, vpc_of};

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let snap = ctx.snap;
    let ov = &*snap.overlay;
    // The frame's last route decision (a frame's packets mostly go to few destinations).
    let mut last = LastLookup::new();
    for mut pkt in input.drain(..) {
        let vpc = vpc_of(&pkt.meta);
        let (dst, ttl) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            (ip.dst(), ip.ttl())
        };
        if out.traced(&pkt.meta) {
            if let Some(p) = ov.route_prefix(vpc, dst) {
                let (prefix, len) = (p.bits(), p.length());
                out.note(&pkt.meta, Detail::VpcRoute { vpc, prefix, len });
            }
        }
        let route = *last.get((vpc, dst), || ov.route(vpc, dst));
        let error = match route {
            RouteResult::Endpoint(e) if ttl > 1 => match ov.endpoint(e) {
                Some(to) => {
                    let d = pkt.buf.data_mut();
                    ipv4::Packet::new_unchecked(&mut d[L3..]).decrement_ttl();
                    d[0..6].copy_from_slice(&to.mac);
                    d[6..12].copy_from_slice(&ROUTER_MAC);
                    pkt.meta.adj = e;
                    out.to(NodeId::SecurityGroup, pkt.buf, pkt.meta);
                    continue;
                }
                None => {
                    out.drop(pkt.buf, pkt.meta, DropReason::VpcNextHopUnknown);
                    continue;
                }
            },
            RouteResult::Blackhole => {
                out.drop(pkt.buf, pkt.meta, DropReason::RouteBlackhole);
                continue;
            }
            RouteResult::NextHopUnknown => {
                out.drop(pkt.buf, pkt.meta, DropReason::VpcNextHopUnknown);
                continue;
            }
            other => other,
        };
        // Everything else is answered to the sender, from its subnet's gateway. Its port
        // is looked up only here: on the forwarding path above `vm-input` has just
        // admitted the packet from that port, in this same snapshot.
        let Some(me) = ov
            .local_endpoint(pkt.meta.rx_port)
            .map(|e| &ov.endpoints[e as usize])
        else {
            out.drop(pkt.buf, pkt.meta, DropReason::PortDown);
            continue;
        };
        let gateway = ov.gateway_of(me).unwrap_or(0);
        let icmp = |msg_type, code, reason| IcmpRequest {
            msg_type,
            code,
            mtu: 0,
            reason,
        };
        let req = match error {
            RouteResult::NoPort | RouteResult::NoRoute if is_gateway(ov, vpc, dst) => {
                answer_gateway(ctx, out, pkt.buf, pkt.meta, me.mac);
                continue;
            }
            RouteResult::NoPort => icmp(DEST_UNREACHABLE, unreach::HOST, DropReason::VpcNoPort),
            RouteResult::NoRoute => icmp(DEST_UNREACHABLE, unreach::NET, DropReason::VpcNoRoute),
            RouteResult::Unreachable => icmp(
                DEST_UNREACHABLE,
                unreach::HOST,
                DropReason::RouteUnreachable,
            ),
            // A route to an endpoint with TTL 1 left.
            _ => icmp(TIME_EXCEEDED, 0, DropReason::Ip4TtlExpired),
        };
        router_icmp(ctx, out, pkt.buf, pkt.meta, req, gateway, me.mac);
    }
}

/// True if `dst` is the gateway address of one of the VPC's subnets.
fn is_gateway(ov: &crate::overlay::Overlay, vpc: u16, dst: u32) -> bool {
    ov.vpcs
        .get(usize::from(vpc))
        .is_some_and(|v| v.subnets.iter().any(|s| s.gateway == dst))
}

/// A packet for a gateway address: echo requests are answered by the router, in place,
/// straight back to the VM; anything else gets port or protocol unreachable.
fn answer_gateway<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    out: &mut Outputs<'_, B, TR>,
    mut buf: B,
    meta: crate::graph::Meta,
    vm_mac: crate::state::Mac,
) {
    let (proto, src, dst, hl, frag) = {
        let ip = ipv4::Packet::new_unchecked(&buf.data()[L3..]);
        (
            ip.protocol(),
            ip.src(),
            ip.dst(),
            ip.header_len(),
            ip.is_fragment(),
        )
    };
    if frag {
        out.drop(buf, meta, DropReason::Ip4FragmentToUs);
        return;
    }
    if proto == PROTO_ICMP {
        let d = buf.data_mut();
        let Some(mut msg) = icmp::Packet::new_checked(&mut d[L3 + hl..]) else {
            out.drop(buf, meta, DropReason::IcmpMalformed);
            return;
        };
        if !msg.verify() {
            out.drop(buf, meta, DropReason::IcmpMalformed);
            return;
        }
        if msg.msg_type() != ECHO_REQUEST {
            out.drop(buf, meta, DropReason::LocalIcmpIgnored);
            return;
        }
        msg.echo_to_reply();
        let mut ip = ipv4::Packet::new_unchecked(&mut d[L3..]);
        ip.set_addrs(dst, src);
        ip.set_ttl(LOCAL_TTL);
        ip.fill_checksum();
        d[0..6].copy_from_slice(&vm_mac);
        d[6..12].copy_from_slice(&ROUTER_MAC);
        out.tx(meta.rx_port, buf, meta);
        return;
    }
    let code = match proto {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => unreach::PORT,
        _ => unreach::PROTOCOL,
    };
    let req = IcmpRequest {
        msg_type: DEST_UNREACHABLE,
        code,
        mtu: 0,
        reason: DropReason::LocalUnreachable,
    };
    router_icmp(ctx, out, buf, meta, req, dst, vm_mac);
}
