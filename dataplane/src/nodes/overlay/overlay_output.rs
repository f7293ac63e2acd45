//! `overlay-output`: the last overlay step. A destination port on this host gets the frame
//! on its DPDK port; one on another host gets it inside Geneve (VNI = the VPC's) towards
//! that host's underlay address, then `ip4-lookup` routes and resolves the outer packet on
//! the underlay like any packet the dataplane builds. An inner packet larger than the
//! overlay MTU gets fragmentation-needed (with the overlay MTU) from the sender's gateway
//! when DF is set, and is dropped otherwise (the dataplane does not fragment).

use crate::buf::PacketBuf;
use crate::graph::frame::IcmpRequest;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::overlay::Location;
use crate::trace::Detail;
use crate::wire::geneve::{self, EncapParams};
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
        let ident = ctx.env.next_ident;
        ctx.env.next_ident = ident.wrapping_add(1);
        geneve::encap_headers(
            pkt.buf.data_mut(),
            &EncapParams {
                src_mac: [0; 6],
                dst_mac: [0; 6],
                src_ip: ov.underlay_ip,
                dst_ip: underlay,
                sport: geneve::flow_source_port(hash),
                ident,
                vni: vpc.vni,
                trace_id,
                inner_len,
            },
        );
        pkt.meta.set_local_origin();
        let (remote, vni) = (underlay, vpc.vni);
        out.note(&pkt.meta, Detail::Encap { remote, vni });
        out.to(NodeId::Ip4Lookup, pkt.buf, pkt.meta);
    }
}
