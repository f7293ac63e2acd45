//! `ip4-icmp-error`: counts the original packet's drop reason, then — unless RFC 1812
//! §4.3.2.7 forbids it or the rate limit is spent — turns the packet into the ICMP error
//! in place (the quoted datagram stays where it is; 28 bytes of headers are prepended)
//! and sends it back through `ip4-lookup`.

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::stats::bump;
use crate::graph::{Frame, NodeCtx, NodeId, Outputs};
use crate::state::snapshot::{Adjacency, Snapshot};
use crate::trace::Detail;
use crate::wire::checksum;
use crate::wire::icmp::{self, unreach, DEST_UNREACHABLE};
use crate::wire::ipv4::{self, PROTO_ICMP};
use crate::wire::{ethernet, put16};

use super::ip4_local::LOCAL_TTL;
use super::L3;

/// Longest ICMP error datagram (RFC 1812 §4.3.2.3): 576 bytes of IP.
const MAX_ERROR_IP_LEN: usize = 576;
/// Bytes added in front of the quoted datagram: IPv4 + ICMP headers.
const GROWTH: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    for mut pkt in input.drain(..) {
        let req = pkt.meta.icmp();
        ctx.env.stats.count_drop(req.reason);
        let (msg_type, code, mtu) = (req.msg_type, req.code, req.mtu);
        out.note(
            &pkt.meta,
            Detail::IcmpError {
                msg_type,
                code,
                mtu,
            },
        );
        out.dropped_for_icmp(pkt.buf.data(), &pkt.meta, req.reason);
        let (src, dst, allowed) = {
            let d = pkt.buf.data();
            let ip = ipv4::Packet::new_unchecked(&d[L3..]);
            (ip.src(), ip.dst(), may_answer(d, pkt.meta.local_origin()))
        };
        if !allowed {
            out.forget(&mut pkt.meta);
            drop(pkt.buf);
            continue;
        }
        // Errors about a packet to one of our addresses come from that address; errors
        // about a transit packet come from the port the error leaves through (RFC 1812
        // §4.3.2.4, as Linux does), falling back to the port the packet arrived on.
        let local_reply = req.msg_type == DEST_UNREACHABLE
            && matches!(req.code, unreach::PORT | unreach::PROTOCOL);
        let from = if local_reply {
            Some(dst)
        } else {
            source_address(ctx.snap, src, pkt.meta.rx_port)
        };
        let Some(from) = from else {
            // An unnumbered router cannot say who it is: nothing to send.
            out.forget(&mut pkt.meta);
            drop(pkt.buf);
            continue;
        };
        if !ctx.env.icmp_limit.take(ctx.now_ns) {
            bump(&ctx.env.stats.icmp_rate_limited, 1);
            out.forget(&mut pkt.meta);
            drop(pkt.buf);
            continue;
        }
        let ident = ctx.env.next_ident;
        ctx.env.next_ident = ident.wrapping_add(1);
        if !build_in_place(&mut pkt.buf, req, from, ident) {
            out.forget(&mut pkt.meta);
            drop(pkt.buf);
            continue;
        }
        pkt.meta.set_local_origin();
        bump(&ctx.env.stats.icmp_sent, 1);
        out.to(NodeId::Ip4Lookup, pkt.buf, pkt.meta);
    }
}

/// True if RFC 1812 §4.3.2.7 allows an ICMP error about the packet in `frame` (Ethernet,
/// then a valid IPv4 header): not about an ICMP error, a non-first fragment, a martian
/// source, a multicast or broadcast destination, or a packet the dataplane built itself.
pub fn may_answer(frame: &[u8], local_origin: bool) -> bool {
    let ip = ipv4::Packet::new_unchecked(&frame[L3..]);
    let quoting_error = ip.protocol() == PROTO_ICMP
        && frame
            .get(L3 + ip.header_len())
            .is_some_and(|t| icmp::is_error(*t));
    !local_origin
        && !quoting_error
        && ip.frag_offset() == 0
        && !ipv4::is_martian_source(ip.src())
        && !ipv4::is_multicast_or_broadcast(ip.dst())
}

/// Turns the frame in `buf` (Ethernet, then IPv4) into the ICMP error `req` from `from` to
/// the packet's source, in place: the quoted datagram stays where it is (cut to 576 bytes
/// of IP), 28 bytes of headers are prepended. The Ethernet addresses are left to the
/// caller. Returns false if the buffer could not be reshaped (drop it).
pub fn build_in_place<B: PacketBuf>(buf: &mut B, req: IcmpRequest, from: u32, ident: u16) -> bool {
    let src = ipv4::Packet::new_unchecked(&buf.data()[L3..]).src();
    let quoted = (buf.len() - L3).min(MAX_ERROR_IP_LEN - GROWTH);
    let surplus = buf.len() - L3 - quoted;
    if !buf.trim(surplus) || !buf.prepend(GROWTH) {
        return false;
    }
    let d = buf.data_mut();
    put16(d, 12, ethernet::ETHERTYPE_IPV4);
    let icmp_off = L3 + ipv4::MIN_HEADER_LEN;
    let msg = &mut d[icmp_off..];
    msg[0] = req.msg_type;
    msg[1] = req.code;
    put16(msg, 2, 0);
    put16(msg, 4, 0);
    put16(msg, 6, req.mtu);
    let c = checksum::checksum(msg);
    put16(msg, 2, c);
    let ip_len = (ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + quoted) as u16;
    ipv4::emit_header(
        &mut d[L3..],
        ip_len,
        ident,
        LOCAL_TTL,
        PROTO_ICMP,
        from,
        src,
    );
    d[L3 + 1] = 0xc0; // internetwork control, as Linux marks its ICMP errors
    ipv4::Packet::new_unchecked(&mut d[L3..]).fill_checksum();
    true
}

/// The address an ICMP error to `to` is sent from: the primary address of the port the
/// route back to `to` leaves through, else of the port `rx_port` the packet came in on.
fn source_address(snap: &Snapshot, to: u32, rx_port: u16) -> Option<u32> {
    let egress = snap
        .fib
        .lookup(to)
        .and_then(|nh| snap.adjacencies.get(nh as usize))
        .and_then(|adj| match adj {
            Adjacency::Attached { port } | Adjacency::Gateway { port, .. } => Some(*port),
            _ => None,
        });
    [egress, Some(rx_port)]
        .into_iter()
        .flatten()
        .find_map(|p| {
            snap.ports
                .get(usize::from(p))
                .and_then(|v| v.primary_addr())
        })
        .map(u32::from)
}
