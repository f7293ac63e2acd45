//! `arp-input`: answers requests for our addresses in place, reports every sender that
//! talked to us (and gratuitous announcements) to the control thread's neighbour table.

use crate::buf::PacketBuf;
use crate::graph::{ControlEvent, DropReason, Frame, NodeCtx, Outputs};
use crate::wire::arp::{self, ArpError, OP_REPLY, OP_REQUEST};
use crate::wire::ethernet;
use std::net::Ipv4Addr;

use super::L3;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    for mut pkt in input.drain(..) {
        let port = pkt.meta.rx_port;
        let (op, sha, spa, tpa) = match arp::Packet::new_checked(&pkt.buf.data()[L3..]) {
            Ok(a) => (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip()),
            Err(ArpError::Malformed) => {
                out.drop(pkt.buf, pkt.meta, DropReason::ArpMalformed);
                continue;
            }
            Err(ArpError::Unsupported) => {
                out.drop(pkt.buf, pkt.meta, DropReason::ArpUnsupported);
                continue;
            }
        };
        let Some(pv) = ctx.snap.ports.get(port as usize) else {
            out.drop(pkt.buf, pkt.meta, DropReason::PortDown);
            continue;
        };
        let for_us = ctx.snap.is_local_on(port, Ipv4Addr::from(tpa));
        let gratuitous = spa == tpa;
        let sender_ok = spa != 0 && !ethernet::is_multicast(&sha);
        if sender_ok && (for_us || gratuitous) {
            ctx.env.event(ControlEvent::NeighbourSeen {
                port,
                ip: spa,
                mac: sha,
                reply: op == OP_REPLY && for_us,
            });
        }
        match op {
            OP_REQUEST if for_us && !gratuitous => {
                let mac = pv.mac_for(Ipv4Addr::from(tpa));
                let d = pkt.buf.data_mut();
                d[0..6].copy_from_slice(&sha);
                d[6..12].copy_from_slice(&mac);
                arp::emit(&mut d[L3..], OP_REPLY, mac, tpa, sha, spa);
                out.tx(port, pkt.buf, pkt.meta);
            }
            OP_REQUEST | OP_REPLY if for_us || gratuitous => out.consume(pkt.buf, pkt.meta),
            OP_REQUEST | OP_REPLY => out.drop(pkt.buf, pkt.meta, DropReason::ArpNotForUs),
            _ => out.drop(pkt.buf, pkt.meta, DropReason::ArpUnsupported),
        }
    }
}
