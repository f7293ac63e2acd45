//! `security-group`: stateful security groups, per port. A packet from a VM is checked
//! against the egress rules of its port; a packet to a port on this host against that
//! port's ingress rules (both, for traffic between two ports of this host). Each check
//! looks in the worker's connection table first (zone = the port): a packet of a known
//! connection passes — a reply without looking at any rule — and a new one is checked
//! against the rules and, if allowed, recorded. ICMP errors pass when the packet they
//! quote belongs to a known connection ("related").
//!
//! Rule changes: new connections follow the new rules at once; a known connection is
//! checked again at its next packet in the original direction when its port's rules
//! changed since it was recorded, and removed (its packet dropped) if now denied.
//! Every denial counts `security_group_deny` and the counter of the rule (or default) that
//! decided.
//!
//! With several workers, each connection belongs to one worker (a hash of its 5-tuple that
//! is the same in both directions); a packet received by another worker is handed to the
//! owner here, so both directions always meet the same connection table.

use crate::buf::PacketBuf;
use crate::conntrack::{tcp, ConnTable, Dir, Flow, Full, Probe, Update};
use crate::graph::stats::bump;
use crate::graph::{DropReason, Frame, NodeCtx, NodeId, Outputs};
use crate::overlay::secgroup::Direction;
use crate::overlay::{Location, Overlay};
use crate::trace::record::SgCheck;
use crate::trace::Detail;
use crate::wire::icmp;
use crate::wire::ipv4;

use super::{inner_flow, InnerFlow};

/// Marks a packet this worker handles itself (in the per-frame scratch array).
const MINE: u32 = u32::MAX;

/// How many packets ahead the connection slot is prefetched: the first pass prefetches
/// the first `AHEAD` packets' slots, the second pass packet `i + AHEAD`'s while it checks
/// packet `i`, so the misses overlap with the checks instead of stalling the first pass
/// (a frame's 128 prefetches in a row wait for free fill buffers).
const AHEAD: usize = 16;

/// Processes one frame.
#[inline]
pub fn process<B: PacketBuf, const TR: bool>(
    ctx: &mut NodeCtx<'_>,
    input: &mut Frame<B>,
    out: &mut Outputs<'_, B, TR>,
) {
    let ov = &*ctx.snap.overlay;
    let now = ctx.now_ns;
    let workers = out.workers();
    // First pass: parse every packet's flow once, find the packets whose flow another
    // worker owns (they go to it), and make the others' probes for their first check (the
    // key and slot for the lookup); the first [`AHEAD`] slots are prefetched here, the
    // rest during the second pass.
    let env = &mut *ctx.env;
    for (i, pkt) in input.iter().enumerate() {
        let f = inner_flow(pkt.buf.data());
        env.scratch.flows[i] = f;
        let owner = if workers > 1 {
            out.other_owner(f.in_zone(0).symmetric_hash())
        } else {
            None
        };
        env.scratch.values[i] = owner.map_or(MINE, |o| o as u32);
        env.scratch.probes[i] = None;
        if owner.is_some() {
            continue;
        }
        let zone = match ov.local_endpoint(pkt.meta.rx_port) {
            Some(_) => Some(pkt.meta.rx_port),
            None => match ov.endpoint(pkt.meta.adj).map(|e| e.at) {
                Some(Location::Local(port)) => Some(port),
                _ => None,
            },
        };
        if let Some(zone) = zone {
            let probe = env.conntrack.probe(&f.in_zone(zone));
            if i < AHEAD {
                env.conntrack.prefetch_probe(&probe);
            }
            env.scratch.probes[i] = Some(probe);
        }
    }
    let n = input.len();
    for (i, pkt) in input.drain(..).enumerate() {
        if i + AHEAD < n {
            if let Some(p) = &ctx.env.scratch.probes[i + AHEAD] {
                ctx.env.conntrack.prefetch_probe(p);
            }
        }
        let owner = ctx.env.scratch.values[i];
        if owner != MINE {
            out.handoff(owner as usize, pkt.buf, pkt.meta);
            continue;
        }
        let f = ctx.env.scratch.flows[i];
        let probe = ctx.env.scratch.probes[i];
        let related = related_flow(pkt.buf.data(), &f);
        let mut egress = SgCheck::NotChecked;
        // Egress: the sending VM's port on this host.
        if let Some(src) = ov.local_endpoint(pkt.meta.rx_port) {
            let zone = pkt.meta.rx_port;
            let e = &ov.endpoints[src as usize];
            let r = check(
                ctx.env,
                ov,
                e.rules,
                zone,
                Direction::Egress,
                &f,
                probe,
                related.as_ref(),
                now,
            );
            match r {
                Ok(c) => egress = c,
                Err((reason, c)) => {
                    let ingress = SgCheck::NotChecked;
                    out.note(&pkt.meta, Detail::Security { egress: c, ingress });
                    out.drop(pkt.buf, pkt.meta, reason);
                    continue;
                }
            }
        }
        let mut ingress = SgCheck::NotChecked;
        // Ingress: the destination port, if it is on this host.
        if let Some(dst) = ov.endpoint(pkt.meta.adj) {
            if let Location::Local(port) = dst.at {
                let r = check(
                    ctx.env,
                    ov,
                    dst.rules,
                    port,
                    Direction::Ingress,
                    &f,
                    probe,
                    related.as_ref(),
                    now,
                );
                match r {
                    Ok(c) => ingress = c,
                    Err((reason, c)) => {
                        out.note(&pkt.meta, Detail::Security { egress, ingress: c });
                        out.drop(pkt.buf, pkt.meta, reason);
                        continue;
                    }
                }
            }
        }
        out.note(&pkt.meta, Detail::Security { egress, ingress });
        out.to(NodeId::OverlayOutput, pkt.buf, pkt.meta);
    }
}

/// One port's check in one direction: how it passed, or why not (with the rule that
/// denied, for traces).
#[allow(clippy::too_many_arguments)]
#[inline]
fn check(
    env: &mut crate::graph::GraphEnv,
    ov: &Overlay,
    rules: u32,
    zone: u16,
    dir: Direction,
    f: &InnerFlow,
    probe: Option<Probe>,
    related: Option<&Flow>,
    now: u64,
) -> Result<SgCheck, (DropReason, SgCheck)> {
    let ct: &mut ConnTable = &mut env.conntrack;
    if let Some(q) = related {
        let q = Flow { zone, ..*q };
        if ct.lookup(&q, now).is_some() {
            return Ok(SgCheck::Related);
        }
    }
    let flow = f.in_zone(zone);
    let Some(set) = ov.rule_sets.get(rules as usize) else {
        return Err((DropReason::SecurityGroupDeny, SgCheck::NotChecked));
    };
    let epoch = ov.epochs.get(rules as usize).copied().unwrap_or(0);
    let remote = match dir {
        Direction::Ingress => f.src,
        Direction::Egress => f.dst,
    };
    // The prefetch pass's probe is this check's when it was made for this zone.
    let hit = match probe.filter(|p| p.zone() == zone) {
        Some(p) => ct.lookup_probe(&p, now),
        None => ct.lookup(&flow, now),
    };
    if let Some(hit) = hit {
        if matches!(hit.dir, Dir::Original) && ct.tag(hit.slot) != epoch {
            let d = set.evaluate(dir, f.proto, remote, f.dport);
            if !d.allow {
                ct.remove(hit.slot);
                deny(env, d.counter);
                let rule = SgCheck::Rule {
                    slot: d.counter,
                    allow: false,
                };
                return Err((DropReason::SecurityGroupDeny, rule));
            }
            ct.set_tag(hit.slot, epoch);
        }
        return match ct.update(hit, f.tcp_flags, f.len, now) {
            Update::Ok => Ok(SgCheck::Connection),
            Update::Invalid => Err((DropReason::ConntrackInvalid, SgCheck::Refused)),
        };
    }
    if f.proto == ipv4::PROTO_TCP && !tcp::flags_valid(f.tcp_flags) {
        return Err((DropReason::ConntrackInvalid, SgCheck::Refused));
    }
    let d = set.evaluate(dir, f.proto, remote, f.dport);
    let rule = SgCheck::Rule {
        slot: d.counter,
        allow: d.allow,
    };
    if !d.allow {
        deny(env, d.counter);
        return Err((DropReason::SecurityGroupDeny, rule));
    }
    match env.conntrack.insert(&flow, f.tcp_flags, f.len, now, epoch) {
        Ok(_) => Ok(rule),
        Err(Full) => Err((DropReason::ConntrackFull, SgCheck::Refused)),
    }
}

/// Counts a denial against its rule's counter slot.
#[inline]
fn deny(env: &crate::graph::GraphEnv, slot: u16) {
    if let Some(c) = env.stats.sg_denies.get(usize::from(slot)) {
        bump(c, 1);
    }
}

/// For an ICMP error, the flow of the packet it quotes (in the direction that packet
/// travelled); `None` for everything else or a quote too short to read.
fn related_flow(frame: &[u8], f: &InnerFlow) -> Option<Flow> {
    if f.proto != ipv4::PROTO_ICMP || !icmp::is_error(f.icmp_type) {
        return None;
    }
    let q = frame.get(f.l4 + icmp::HEADER_LEN..)?;
    if q.len() < ipv4::MIN_HEADER_LEN || q[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(q[0] & 0x0f) * 4;
    let l4 = q.get(hl..hl + 8)?;
    let proto = q[9];
    let (sport, dport) = match proto {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => (crate::wire::be16(l4, 0), crate::wire::be16(l4, 2)),
        ipv4::PROTO_ICMP => {
            let id = crate::wire::be16(l4, 4);
            (id, id)
        }
        _ => (0, 0),
    };
    Some(Flow {
        zone: 0,
        proto,
        src: crate::wire::be32(q, 12),
        dst: crate::wire::be32(q, 16),
        sport,
        dport,
    })
}
