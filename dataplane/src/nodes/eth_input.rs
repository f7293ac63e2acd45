//! `ethernet-input`: drops runts; frames from a VM port go to `vm-input`; on other ports
//! drops frames not addressed to the port (software MAC filter: our MAC, broadcast,
//! multicast), hands VRRP advertisements on VRRP ports to the control thread, then
//! dispatches IPv4 and ARP by EtherType.
//!
//! The common frame — every packet from one port, IPv4 to the port's own MAC (or, on a VM
//! port, anything not a runt) — is checked in one tight pass and handed on whole
//! ([`Outputs::to_all`]: the frames trade places), not moved packet by packet.

use crate::buf::PacketBuf;
use crate::graph::{ControlEvent, DropReason, Frame, NodeCtx, NodeId, Outputs, PuntedFrame};
use crate::state::snapshot::Snapshot;
use crate::wire::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4};

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Box<Frame<B>>,
    out: &mut Outputs<'_, B, TR>,
) {
    // Traced packets take the packet-by-packet path, which records their hops.
    if !TR {
        if let Some(next) = whole_frame_next(ctx.snap, input) {
            out.to_all(next, input);
            return;
        }
    }
    let ports = &ctx.snap.ports;
    let overlay = &*ctx.snap.overlay;
    for pkt in input.drain(..) {
        let d = pkt.buf.data();
        if d.len() < ethernet::HEADER_LEN {
            out.drop(pkt.buf, pkt.meta, DropReason::EthRunt);
            continue;
        }
        let Some(port) = ports.get(pkt.meta.rx_port as usize) else {
            out.drop(pkt.buf, pkt.meta, DropReason::PortDown);
            continue;
        };
        if overlay.local_endpoint(pkt.meta.rx_port).is_some() {
            out.to(NodeId::VmInput, pkt.buf, pkt.meta);
            continue;
        }
        // Compared as two integers, not bytes (no memcmp call per packet).
        if !ethernet::same_mac(d, &port.mac) && d[0] & 1 == 0 && !port.has_vmac(d) {
            out.drop(pkt.buf, pkt.meta, DropReason::EthNotForUs);
            continue;
        }
        if port.vrrp && is_vrrp(d) {
            match PuntedFrame::new(pkt.meta.rx_port, d) {
                Some(f) if ctx.env.try_event(ControlEvent::Vrrp(f)) => {
                    out.consume(pkt.buf, pkt.meta)
                }
                Some(_) => out.drop(pkt.buf, pkt.meta, DropReason::ControlQueueFull),
                None => out.drop(pkt.buf, pkt.meta, DropReason::VrrpOversize),
            }
            continue;
        }
        match crate::wire::be16(d, 12) {
            // A unicast IPv4 packet sent to a link-layer group address is neither routed
            // nor answered (RFC 1812 §5.3.4); IPv4 multicast and broadcast go on.
            ETHERTYPE_IPV4 if d[0] & 1 == 1 && link_group_with_unicast_ip(d) => {
                out.drop(pkt.buf, pkt.meta, DropReason::Ip4LinkBroadcast)
            }
            ETHERTYPE_IPV4 => out.to(NodeId::Ip4Forward, pkt.buf, pkt.meta),
            ETHERTYPE_ARP => out.to(NodeId::ArpInput, pkt.buf, pkt.meta),
            _ => out.drop(pkt.buf, pkt.meta, DropReason::EthUnknownType),
        }
    }
}

/// The node every packet of `input` goes to when the per-packet path would send them all
/// there with no other effect: all from one existing port, none a runt, and either that
/// port is a VM port (`vm-input` does the rest) or every packet is IPv4 to the port's MAC
/// and, on a VRRP port, not VRRP. `None` otherwise, or for an empty frame.
#[inline(always)]
fn whole_frame_next<B: PacketBuf>(snap: &Snapshot, input: &Frame<B>) -> Option<NodeId> {
    let rx_port = input.first()?.meta.rx_port;
    let port = snap.ports.get(usize::from(rx_port))?;
    if snap.overlay.local_endpoint(rx_port).is_some() {
        let all = input
            .iter()
            .all(|p| p.meta.rx_port == rx_port && p.buf.len() >= ethernet::HEADER_LEN);
        return all.then_some(NodeId::VmInput);
    }
    let all = input.iter().all(|p| {
        let d = p.buf.data();
        p.meta.rx_port == rx_port
            && d.len() >= ethernet::HEADER_LEN
            && ethernet::same_mac(d, &port.mac)
            && crate::wire::be16(d, 12) == ETHERTYPE_IPV4
            && !(port.vrrp && is_vrrp(d))
    });
    all.then_some(NodeId::Ip4Forward)
}

/// True for IPv4 protocol 112 (VRRP); the control thread checks the rest.
#[inline]
fn is_vrrp(d: &[u8]) -> bool {
    d.len() >= ethernet::HEADER_LEN + 20
        && crate::wire::be16(d, 12) == ETHERTYPE_IPV4
        && d[ethernet::HEADER_LEN + 9] == 112
}

/// True if the IPv4 destination of this group-addressed frame is a unicast address (short
/// frames are left to the IPv4 checks).
fn link_group_with_unicast_ip(d: &[u8]) -> bool {
    d.len() >= ethernet::HEADER_LEN + 20
        && !crate::wire::ipv4::is_multicast_or_broadcast(crate::wire::be32(
            d,
            ethernet::HEADER_LEN + 16,
        ))
}
