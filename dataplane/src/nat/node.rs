//! Where NAT meets the forwarding path (`ip4-forward` calls these):
//!
//! - [`to_inside`], before the route lookup, for packets that arrived on the outside port
//!   addressed to an outside address: the session's inside destination is put back (replies
//!   to source NAT, traffic to a floating IP, which opens a session), and ICMP errors about a
//!   translated packet are translated back with it. Without a session the packet stays
//!   addressed to us (the gateway answers ping on its addresses).
//! - [`to_outside`], after the lookup, for packets leaving by the outside port from an inside
//!   source with a floating IP or a source NAT rule: the session is found or created and the
//!   source rewritten.
//!
//! Both return the drop reason when a packet must not go on. The gateway of VMs over the
//! overlay (`gateway-output`, [`crate::nodes::gateway`]) calls the same two with the VPC
//! the packet came from or goes to. Both take the hint [`prefetch_session`] returned for the
//! packet (the slot its session probably is in), or [`NO_HINT`].

use crate::graph::DropReason;

use super::translate::{self, IcmpKind, Tuple, Untranslatable};
use super::{InsideKey, NatConfig, NatError, NatTable, OutsideKey, Translation};

pub use super::{NO_HINT, ROUTED_VPC};

/// Where an inbound packet goes after [`to_inside`] translated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsideDestination {
    /// The VPC (VNI) of the session, [`ROUTED_VPC`] for the routed inside port.
    pub vpc: u32,
    /// The inside destination address (host order).
    pub ip: u32,
}

fn tcp_flags(ip: &[u8], t: &Tuple) -> u8 {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if t.proto == 6 && ip.len() > hl + 13 {
        ip[hl + 13]
    } else {
        0
    }
}

/// The remote port of a session: ICMP echo has none (its identifier is the inside
/// "port", which source NAT rewrites), so replies match whatever identifier they carry.
fn remote_port(proto: u8, port: u16) -> u16 {
    if proto == 1 {
        0
    } else {
        port
    }
}

/// The inside key of an outbound packet of VPC `vpc` with tuple `t`.
#[inline(always)]
fn inside_key(vpc: u32, t: &Tuple) -> InsideKey {
    InsideKey {
        vpc,
        proto: t.proto,
        inside_ip: t.src,
        inside_port: t.sport,
        remote_ip: t.dst,
        remote_port: remote_port(t.proto, t.dport),
    }
}

/// The outside key of an inbound packet with tuple `t`.
#[inline(always)]
fn outside_key(t: &Tuple) -> OutsideKey {
    OutsideKey {
        proto: t.proto,
        outside_ip: t.dst,
        outside_port: t.dport,
        remote_ip: t.src,
        remote_port: remote_port(t.proto, t.sport),
    }
}

/// Stage one of prefetching a frame's sessions, so that their cache misses overlap: nodes
/// call it for every packet of a frame, keep the returned hash, then call
/// [`prefetch_session`] with it for every packet, before they process the frame.
/// `inbound`: the packet came from outside (looked up by outside key), else it leaves from
/// VPC `vpc`. Returns 0 for a packet NAT does not carry (it cost a parse and nothing else).
#[inline(always)]
pub fn prefetch_index(table: &NatTable, ip: &[u8], inbound: bool, vpc: u32) -> u64 {
    let Ok(t) = translate::tuple(ip) else {
        return 0;
    };
    if inbound {
        table.prefetch_outside(&outside_key(&t))
    } else {
        table.prefetch_inside(&inside_key(vpc, &t))
    }
}

/// Stage two: prefetches the session that stage one's `hash` leads to, and returns its slot
/// as the hint for [`to_inside`] or [`to_outside`] ([`NO_HINT`] for a hash of 0 or no
/// candidate).
#[inline(always)]
pub fn prefetch_session(table: &NatTable, inbound: bool, hash: u64) -> u32 {
    if hash != 0 {
        table.prefetch_session(inbound, hash)
    } else {
        NO_HINT
    }
}

fn untranslatable(e: Untranslatable) -> DropReason {
    match e {
        Untranslatable::Truncated => DropReason::NatTruncated,
        Untranslatable::Fragment | Untranslatable::Protocol => DropReason::NatUntranslatable,
    }
}

/// An inbound packet (arrived on the outside port, or hairpinned by the gateway). Returns
/// the new destination when it was translated, `Ok(None)` when it is not NAT traffic.
/// `hint`: the session slot [`prefetch_session`] returned for it, or [`NO_HINT`].
pub fn to_inside(
    cfg: &NatConfig,
    table: &mut NatTable,
    ip: &mut [u8],
    now_ns: u64,
    hint: u32,
) -> Result<Option<InsideDestination>, DropReason> {
    if ip.len() < 20 {
        return Ok(None);
    }
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    if !cfg.is_outside_address(dst) {
        return Ok(None);
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] == 1 && ip.len() > hl && translate::icmp_kind(ip[hl]) == IcmpKind::Error {
        let Ok(inner) = translate::inner_tuple(ip) else {
            return Ok(None);
        };
        let k = OutsideKey {
            proto: inner.proto,
            outside_ip: inner.src,
            outside_port: inner.sport,
            remote_ip: inner.dst,
            remote_port: remote_port(inner.proto, inner.dport),
        };
        let Some(s) = table.get_outside(&k, now_ns).copied() else {
            return Ok(None);
        };
        translate::icmp_error_to_inside(ip, s.inside.inside_ip, s.inside.inside_port)
            .map_err(untranslatable)?;
        return Ok(Some(InsideDestination {
            vpc: s.inside.vpc,
            ip: s.inside.inside_ip,
        }));
    }
    let t = match translate::tuple(ip) {
        Ok(t) => t,
        // Not something NAT carries (e.g. GRE to a floating IP): left to the local node.
        Err(_) => return Ok(None),
    };
    let k = outside_key(&t);
    let inside = match table.find_outside_hinted(&k, hint, now_ns) {
        Some((i, inside)) => {
            table.touch_at(i, true, tcp_flags(ip, &t), now_ns);
            translate::set_destination_parsed(ip, &t, inside.inside_ip, inside.inside_port)
                .map_err(untranslatable)?;
            return Ok(Some(InsideDestination {
                vpc: inside.vpc,
                ip: inside.inside_ip,
            }));
        }
        None => {
            let Some(f) = cfg.floating_by_outside(dst) else {
                return Ok(None);
            };
            // A new connection to a floating IP: opened from outside.
            let ik = InsideKey {
                vpc: f.vpc,
                proto: t.proto,
                inside_ip: u32::from(f.inside),
                inside_port: t.dport,
                remote_ip: t.src,
                remote_port: remote_port(t.proto, t.sport),
            };
            table
                .outbound(&ik, Translation::FloatingIp { ip: dst }, now_ns)
                .map_err(nat_error)?;
            ik
        }
    };
    table.touch(&inside, true, tcp_flags(ip, &t), now_ns);
    translate::set_destination_parsed(ip, &t, inside.inside_ip, inside.inside_port)
        .map_err(untranslatable)?;
    Ok(Some(InsideDestination {
        vpc: inside.vpc,
        ip: inside.inside_ip,
    }))
}

/// Undoes [`to_inside`]'s rewrite of an inbound packet: its destination goes back to
/// `addr:port`, as the external sender addressed it (for an ICMP error that must quote it).
pub fn translate_back(ip: &mut [u8], addr: u32, port: u16) -> Result<(), DropReason> {
    translate::set_destination(ip, addr, port).map_err(untranslatable)
}

fn nat_error(e: NatError) -> DropReason {
    match e {
        NatError::Full => DropReason::NatFull,
        NatError::NoPort => DropReason::NatNoPort,
        NatError::Conflict => DropReason::NatNoPort,
        // Only synced installs see it; counted like a port that cannot be had.
        NatError::OtherSlice => DropReason::NatNoPort,
    }
}

/// An outbound packet from VPC `vpc` ([`ROUTED_VPC`] for the routed inside port) about to
/// leave by the outside port. `Ok(false)`: no rule applies. `hint` as for [`to_inside`].
///
/// A packet of a live session is translated by it without choosing a rule: a session keeps
/// its mapping until it ends or its grant is revoked ([`NatConfig::grants`]), whichever rule
/// applies to its source now. Only a packet without a session has its rule chosen (the
/// out-of-line `to_outside_new`).
/// Inlined: the session key is built here and must stay in registers through the lookup.
#[inline(always)]
pub fn to_outside(
    cfg: &NatConfig,
    table: &mut NatTable,
    vpc: u32,
    ip: &mut [u8],
    now_ns: u64,
    hint: u32,
) -> Result<bool, DropReason> {
    if let Ok(t) = translate::tuple(ip) {
        let k = inside_key(vpc, &t);
        if let Some((addr, port)) = table.touch_inside_hinted(&k, hint, tcp_flags(ip, &t), now_ns) {
            translate::set_source_parsed(ip, &t, addr, port).map_err(untranslatable)?;
            return Ok(true);
        }
    }
    to_outside_new(cfg, table, vpc, ip, now_ns)
}

/// [`to_outside`] of a packet without a live session: the rule that applies to its source,
/// if any, opens one.
#[cold]
#[inline(never)]
fn to_outside_new(
    cfg: &NatConfig,
    table: &mut NatTable,
    vpc: u32,
    ip: &mut [u8],
    now_ns: u64,
) -> Result<bool, DropReason> {
    if ip.len() < 20 {
        return Ok(false);
    }
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let Some(tr) = cfg.translation_for(vpc, src) else {
        return Ok(false);
    };
    let t = translate::tuple(ip).map_err(untranslatable)?;
    let k = inside_key(vpc, &t);
    let (addr, port) = table
        .outbound_new(k, tr, tcp_flags(ip, &t), now_ns)
        .map_err(nat_error)?;
    translate::set_source_parsed(ip, &t, addr, port).map_err(untranslatable)?;
    Ok(true)
}
