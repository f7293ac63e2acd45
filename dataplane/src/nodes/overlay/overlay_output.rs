//! `overlay-output`: the last overlay step. A destination port on this host gets the frame
//! on its DPDK port; one on another host gets it inside Geneve (VNI = the VPC's) towards
//! that host's underlay address. The outer packet is routed on the underlay here, once per
//! remote host and frame (the tunnel's next hop, as VPP stacks a tunnel on its underlay
//! route): when the route, the port and the neighbour's MAC are all known and the packet
//! fits the port's MTU, it is written with its Ethernet header — stamped from the outer
//! headers built once per remote host and VNI in the frame ([`EncapTemplate`]) — and
//! transmitted at once; otherwise (no route, a neighbour to resolve, too big, a traced
//! packet, a capture on `ip4-lookup`) `ip4-lookup` routes it like any packet the dataplane
//! builds, with its errors and its hold queue. An inner packet larger than the overlay MTU gets
//! fragmentation-needed (with the overlay MTU) from the sender's gateway when DF is set,
//! and is dropped otherwise (the dataplane does not fragment).

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, LastLookup, NodeCtx, NodeId, Outputs};
use crate::overlay::Location;
use crate::state::snapshot::{Adjacency, Mac, Snapshot};
use crate::trace::Detail;
use crate::wire::geneve::{self, EncapParams, EncapTemplate};
use crate::wire::icmp::{unreach, DEST_UNREACHABLE};
use crate::wire::ipv4;

use super::super::L3;
use super::{inner_flow, router_icmp, vpc_of};

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let snap = ctx.snap;
    let ov = &*snap.overlay;
    // The last remote host's underlay next hop (frames mostly go to few hosts).
    let mut last = LastLookup::new();
    // The outer headers for the last remote host and VNI (the hop's MACs are fixed by the
    // remote host within a frame).
    let mut templates = LastLookup::new();
    let direct_ok = !out.captured(NodeId::Ip4Lookup);
    for mut pkt in input.drain(..) {
        let Some(to) = ov.endpoint(pkt.meta.adj) else {
            out.drop(pkt.buf, pkt.meta, DropReason::VpcNextHopUnknown);
            continue;
        };
        let underlay = match to.at {
            Location::Local(port) => {
                let endpoint = pkt.meta.adj;
                out.note(&pkt.meta, Detail::Endpoint { endpoint });
                if !snap.ports.get(usize::from(port)).is_some_and(|p| p.up) {
                    out.drop(pkt.buf, pkt.meta, DropReason::PortDown);
                } else {
                    out.tx(port, pkt.buf, pkt.meta);
                }
                continue;
            }
            Location::Remote(ip) => ip,
            Location::Unplaced => {
                out.drop(pkt.buf, pkt.meta, DropReason::PortNotPlaced);
                continue;
            }
        };
        let (total, df) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.buf.data()[L3..]);
            (ip.total_len(), ip.dont_frag())
        };
        if total > ov.mtu {
            let sender = ov
                .local_endpoint(pkt.meta.rx_port)
                .map(|e| &ov.endpoints[e as usize]);
            match sender {
                Some(me) if df => {
                    let req = IcmpRequest {
                        msg_type: DEST_UNREACHABLE,
                        code: unreach::FRAG_NEEDED,
                        mtu: ov.mtu,
                        reason: DropReason::Ip4MtuExceeded,
                    };
                    let from = ov.gateway_of(me).unwrap_or(0);
                    let mac = me.mac;
                    router_icmp(ctx, out, pkt.buf, pkt.meta, req, from, mac);
                }
                Some(_) => out.drop(pkt.buf, pkt.meta, DropReason::Ip4FragmentationUnsupported),
                None => out.drop(pkt.buf, pkt.meta, DropReason::Ip4MtuExceeded),
            }
            continue;
        }
        let Some(vpc) = ov.vpcs.get(usize::from(vpc_of(&pkt.meta))) else {
            out.drop(pkt.buf, pkt.meta, DropReason::GeneveUnknownVni);
            continue;
        };
        let f = inner_flow(pkt.buf.data());
        let hash = geneve::flow_hash(f.src, f.dst, f.proto, f.sport, f.dport);
        let inner_len = pkt.buf.len();
        let trace_id = out.trace_id(&pkt.meta);
        let add = geneve::encap_len(trace_id.is_some());
        if !pkt.buf.prepend(add) {
            out.drop(pkt.buf, pkt.meta, DropReason::NoBuffers);
            continue;
        }
        let hop = last.get(underlay, || underlay_hop(snap, underlay)).as_ref();
        // Straight to the port only for an untraced packet that fits (the trace records
        // the `ip4-lookup` hop; a packet too big gets its error there).
        let outer_ip_len = pkt.buf.len() - L3;
        let direct = hop
            .filter(|h| direct_ok && !out.traced(&pkt.meta) && outer_ip_len <= usize::from(h.mtu));
        let ident = ctx.env.next_ident;
        ctx.env.next_ident = ident.wrapping_add(1);
        let sport = geneve::flow_source_port(hash);
        match direct.filter(|_| trace_id.is_none()) {
            // The common case: the headers of this host and VNI, stamped.
            Some(h) => {
                let t = templates.get((underlay, vpc.vni), || {
                    EncapTemplate::new(h.src_mac, h.dst_mac, ov.underlay_ip, underlay, vpc.vni)
                });
                t.write(pkt.buf.data_mut(), inner_len, ident, sport);
            }
            None => {
                let (dst_mac, src_mac) =
                    direct.map_or(([0; 6], [0; 6]), |h| (h.dst_mac, h.src_mac));
                geneve::encap_headers(
                    pkt.buf.data_mut(),
                    &EncapParams {
                        src_mac,
                        dst_mac,
                        src_ip: ov.underlay_ip,
                        dst_ip: underlay,
                        sport,
                        ident,
                        vni: vpc.vni,
                        trace_id,
                        inner_len,
                    },
                );
            }
        }
        pkt.meta.set_local_origin();
        let (remote, vni) = (underlay, vpc.vni);
        out.note(&pkt.meta, Detail::Encap { remote, vni });
        match direct {
            Some(h) => {
                pkt.meta.adj = h.adj;
                out.tx(h.port, pkt.buf, pkt.meta);
            }
            None => out.to(NodeId::Ip4Lookup, pkt.buf, pkt.meta),
        }
    }
}

/// Where an outer packet to a remote host goes on the underlay when nothing is in the way.
#[derive(Clone, Copy, Debug)]
struct UnderlayHop {
    /// The FIB's adjacency index (what `ip4-lookup` records in the metadata).
    adj: u32,
    port: u16,
    dst_mac: Mac,
    src_mac: Mac,
    /// The port's IP MTU.
    mtu: u16,
}

/// Routes underlay address `ip` as `ip4-lookup` would for a packet the dataplane built:
/// the hop if the route is a forwarding one through a port that is up and the next hop's
/// MAC is known; `None` for anything `ip4-lookup` has to handle (no route, local,
/// blackhole, unreachable, port down, neighbour unresolved).
#[inline]
fn underlay_hop(snap: &Snapshot, ip: u32) -> Option<UnderlayHop> {
    let adj = snap.fib.lookup(ip)?;
    let (port, nh_ip, mac) = match snap.adjacencies.get(adj as usize)? {
        Adjacency::Gateway { port, gw, mac } => (*port, u32::from(*gw), *mac),
        Adjacency::Attached { port } => (*port, ip, None),
        _ => return None,
    };
    let pv = snap.ports.get(usize::from(port)).filter(|p| p.up)?;
    let dst_mac = mac.or_else(|| snap.neighbour(port, nh_ip))?;
    Some(UnderlayHop {
        adj,
        port,
        dst_mac,
        src_mac: pv.mac,
        mtu: pv.mtu,
    })
}
