//! `vm-input`: frames from a VM port. Port security first — the source MAC must be the
//! port's, the sender or source IPv4 one of its addresses — then:
//! - ARP is answered here and never leaves the host: a request for the subnet's gateway
//!   gets the router MAC, one for another port of the same subnet gets that port's MAC
//!   (from the control plane's port table); anything else is dropped and counted.
//! - IPv4 to the router MAC goes to `vpc-route` (L3); IPv4 to the MAC of another port of
//!   the same subnet is switched (L2) straight to `security-group`; broadcast, multicast
//!   and unknown MACs are never flooded.

use crate::buf::PacketBuf;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::overlay::ROUTER_MAC;
use crate::trace::probe;
use crate::wire::arp::{self, ArpError, OP_REPLY, OP_REQUEST};
use crate::wire::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use crate::wire::ipv4;

use super::super::L3;
use super::NO_DEST;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let ov = &*ctx.snap.overlay;
    for mut pkt in input.drain(..) {
        let Some(me_idx) = ov.local_endpoint(pkt.meta.rx_port) else {
            out.drop(pkt.buf, pkt.meta, DropReason::PortDown);
            continue;
        };
        let me = &ov.endpoints[me_idx as usize];
        let d = pkt.buf.data();
        if !ethernet::same_mac(&d[6..], &me.mac) {
            out.drop(pkt.buf, pkt.meta, DropReason::PortSpoofedMac);
            continue;
        }
        pkt.meta.nh_ip = u32::from(me.vpc);
        pkt.meta.adj = NO_DEST;
        match crate::wire::be16(d, 12) {
            ETHERTYPE_IPV4 => {
                let (src, len) = match ipv4::Packet::new_checked(&d[L3..]) {
                    Ok(ip) => (ip.src(), ip.total_len()),
                    Err(_) => {
                        out.drop(pkt.buf, pkt.meta, DropReason::OverlayBadIp4);
                        continue;
                    }
                };
                if !me.ips.contains(&src) {
                    out.drop(pkt.buf, pkt.meta, DropReason::PortSpoofedIp);
                    continue;
                }
                // Only the dataplane injects probes (they arrive here traced).
                if crate::trace::ENABLED && !out.traced(&pkt.meta) && probe::marked(d, L3).is_some()
                {
                    out.drop(pkt.buf, pkt.meta, DropReason::TraceForged);
                    continue;
                }
                // Ethernet padding of short frames is not part of the packet.
                let surplus = pkt.buf.len() - L3 - usize::from(len);
                if surplus > 0 {
                    pkt.buf.trim(surplus);
                }
                let d = pkt.buf.data();
                if ethernet::same_mac(d, &ROUTER_MAC) {
                    out.to(NodeId::VpcRoute, pkt.buf, pkt.meta);
                    continue;
                }
                if d[0] & 1 == 1 {
                    out.drop(pkt.buf, pkt.meta, DropReason::OverlayNoFlood);
                    continue;
                }
                let dst_mac: [u8; 6] = crate::wire::array(d, 0);
                match ov.endpoint_by_mac(&dst_mac) {
                    Some(e)
                        if ov.endpoints[e as usize].vpc == me.vpc
                            && ov.endpoints[e as usize].subnet == me.subnet =>
                    {
                        pkt.meta.adj = e;
                        out.to(NodeId::SecurityGroup, pkt.buf, pkt.meta);
                    }
                    _ => out.drop(pkt.buf, pkt.meta, DropReason::OverlayUnknownMac),
                }
            }
            ETHERTYPE_ARP => {
                let (op, sha, spa, tpa) = match arp::Packet::new_checked(&d[L3..]) {
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
                if sha != me.mac {
                    out.drop(pkt.buf, pkt.meta, DropReason::PortSpoofedMac);
                    continue;
                }
                // 0.0.0.0 is an address probe (RFC 5227), allowed before the VM has one.
                if spa != 0 && !me.ips.contains(&spa) {
                    out.drop(pkt.buf, pkt.meta, DropReason::PortSpoofedIp);
                    continue;
                }
                if op == OP_REPLY || (op == OP_REQUEST && spa == tpa) {
                    // Replies and announcements: we already know every port's address.
                    out.consume(pkt.buf, pkt.meta);
                    continue;
                }
                if op != OP_REQUEST {
                    out.drop(pkt.buf, pkt.meta, DropReason::ArpUnsupported);
                    continue;
                }
                let answer = if ov.gateway_of(me) == Some(tpa) {
                    Some(ROUTER_MAC)
                } else {
                    ov.endpoint_by_ip(me.vpc, tpa)
                        .map(|e| &ov.endpoints[e as usize])
                        .filter(|e| e.subnet == me.subnet && e.mac != me.mac)
                        .map(|e| e.mac)
                };
                let Some(mac) = answer else {
                    out.drop(pkt.buf, pkt.meta, DropReason::OverlayArpUnknown);
                    continue;
                };
                let d = pkt.buf.data_mut();
                d[0..6].copy_from_slice(&sha);
                d[6..12].copy_from_slice(&mac);
                arp::emit(&mut d[L3..], OP_REPLY, mac, tpa, sha, spa);
                out.tx(pkt.meta.rx_port, pkt.buf, pkt.meta);
            }
            _ => out.drop(pkt.buf, pkt.meta, DropReason::OverlayUnsupported),
        }
    }
}
