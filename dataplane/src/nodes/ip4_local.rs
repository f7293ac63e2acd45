//! `ip4-local`: packets for the dataplane's own addresses. Geneve (UDP 6081 to the
//! underlay address, or to a gateway group's tunnel address) goes to `geneve-input`; session-sync datagrams (UDP to the `[sync]`
//! port, gateways) are copied to the control thread's queue. ICMP echo requests are turned
//! into replies in place and routed back; other ICMP is ignored (counted); UDP and TCP get
//! port-unreachable and other protocols protocol-unreachable, so traceroute to a router
//! address ends as it does at any router. Fragments are not reassembled.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::Snapshot;
use crate::wire::geneve;
use crate::wire::icmp::{self, unreach, DEST_UNREACHABLE, ECHO_REQUEST};
use crate::wire::ipv4::{self, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

use super::L3;

/// True if every packet of `input` is one the per-packet path sends to `geneve-input`:
/// an unfragmented UDP packet to port 6081 of our underlay or tunnel address (false for an
/// empty frame).
#[inline(always)]
fn all_geneve<B: PacketBuf>(snap: &Snapshot, input: &Frame<B>) -> bool {
    let ov = &*snap.overlay;
    !input.is_empty()
        && ov.enabled()
        && input.iter().all(|p| {
            let d = p.buf.data();
            let ip = ipv4::Packet::new_unchecked(&d[L3..]);
            let hl = ip.header_len();
            !ip.is_fragment()
                && ip.protocol() == PROTO_UDP
                && (ip.dst() == ov.underlay_ip || ip.dst() == ov.tunnel_ip)
                && d.len() >= L3 + hl + 4
                && crate::wire::be16(d, L3 + hl + 2) == geneve::UDP_PORT
        })
}

/// TTL of packets the dataplane originates.
pub const LOCAL_TTL: u8 = 64;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Box<Frame<B>>,
    out: &mut Outputs<'_, B, TR>,
) {
    // A frame of Geneve packets only (an overlay host's common case) is handed on whole;
    // traced packets take the packet-by-packet path, which records their hops.
    if !TR && all_geneve(ctx.snap, input) {
        out.to_all(NodeId::GeneveInput, input);
        return;
    }
    for mut pkt in input.drain(..) {
        let (frag, proto, src, dst, hl) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            (
                ip.is_fragment(),
                ip.protocol(),
                ip.src(),
                ip.dst(),
                ip.header_len(),
            )
        };
        if frag {
            out.drop(pkt.buf, pkt.meta, DropReason::Ip4FragmentToUs);
            continue;
        }
        let code = match proto {
            PROTO_ICMP => {
                let d = pkt.buf.data_mut();
                let Some(mut msg) = icmp::Packet::new_checked(&mut d[L3 + hl..]) else {
                    out.drop(pkt.buf, pkt.meta, DropReason::IcmpMalformed);
                    continue;
                };
                if !msg.verify() {
                    out.drop(pkt.buf, pkt.meta, DropReason::IcmpMalformed);
                    continue;
                }
                if msg.msg_type() != ECHO_REQUEST {
                    out.drop(pkt.buf, pkt.meta, DropReason::LocalIcmpIgnored);
                    continue;
                }
                msg.echo_to_reply();
                let mut ip = ipv4::Packet::new_unchecked(&mut d[L3..]);
                ip.set_addrs(dst, src);
                ip.set_ttl(LOCAL_TTL);
                ip.fill_checksum();
                pkt.meta.set_local_origin();
                out.to(NodeId::Ip4Lookup, pkt.buf, pkt.meta);
                continue;
            }
            PROTO_UDP
                if ctx.snap.overlay.enabled()
                    && (dst == ctx.snap.overlay.underlay_ip
                        || dst == ctx.snap.overlay.tunnel_ip)
                    && pkt.buf.data().len() >= L3 + hl + 4
                    && crate::wire::be16(pkt.buf.data(), L3 + hl + 2) == geneve::UDP_PORT =>
            {
                out.to(NodeId::GeneveInput, pkt.buf, pkt.meta);
                continue;
            }
            PROTO_UDP
                if ctx.env.sync.as_ref().is_some_and(|s| {
                    pkt.buf.data().len() >= L3 + hl + 8
                        && crate::wire::be16(pkt.buf.data(), L3 + hl + 2) == s.udp_port
                }) =>
            {
                punt_sync(ctx, pkt.buf, pkt.meta, src, L3 + hl, out);
                continue;
            }
            PROTO_UDP | PROTO_TCP => unreach::PORT,
            _ => unreach::PROTOCOL,
        };
        pkt.meta.set_icmp(IcmpRequest {
            msg_type: DEST_UNREACHABLE,
            code,
            mtu: 0,
            reason: DropReason::LocalUnreachable,
        });
        out.to(NodeId::Ip4IcmpError, pkt.buf, pkt.meta);
    }
}

/// Hands a session-sync datagram (UDP header at `udp`) to the control thread.
#[inline(never)]
fn punt_sync<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    buf: B,
    meta: crate::graph::Meta,
    src: u32,
    udp: usize,
    out: &mut Outputs<'_, B, TR>,
) {
    let Some(sync) = ctx.env.sync.as_ref() else {
        out.drop(buf, meta, DropReason::SyncQueueFull);
        return;
    };
    let d = buf.data();
    // The UDP length bounds the payload (frames may carry Ethernet padding).
    let len = usize::from(crate::wire::be16(d, udp + 4));
    let Some(payload) = (len >= 8).then(|| d.get(udp + 8..udp + len)).flatten() else {
        out.drop(buf, meta, DropReason::Ip4BadLength);
        return;
    };
    let Some(dgram) = crate::sync::SyncDatagram::new(src, payload) else {
        out.drop(buf, meta, DropReason::SyncOversize);
        return;
    };
    if sync.datagrams.push(dgram).is_err() {
        out.drop(buf, meta, DropReason::SyncQueueFull);
        return;
    }
    out.consume(buf, meta);
}
