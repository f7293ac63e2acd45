//! Which worker owns a NAT session (NAT on several workers, as VPP's NAT44-ED spreads it):
//! each worker keeps its own [`super::NatTable`], so every packet of a session, both ways,
//! and the session-sync installs of a backup must reach the one worker whose table holds
//! it. The owner is a function of the packet alone:
//!
//! - source NAT, outbound: a hash of (VPC, protocol, inside address, inside port) — not
//!   the remote, so all the sessions of one endpoint-independent mapping share a worker
//!   (and its one outside port). That worker allocates the outside port from its own slice
//!   ([`super::ports`]);
//! - source NAT, inbound: the worker whose slice holds the destination port — the same
//!   worker, found without any state;
//! - floating IPs (ports unchanged, so no slice): a hash of (protocol, remote address,
//!   remote port, the VM's port), which both directions see alike;
//! - ICMP errors coming back: the same as the packet they quote, read from the quote;
//!   ICMP echo: its identifier is the port (source NAT rewrites it like one), and the
//!   remote "port" is 0, as sessions record it.
//!
//! The hooks ([`crate::nodes::ip4_forward`], [`crate::nodes::gateway`]) hand a packet owned
//! elsewhere to its owner just before the session lookup; the sync driver routes each
//! session it installs with [`of_record`]. A packet NAT cannot parse stays where it is (it
//! is dropped or passed on there, as with one worker).

use aegis_sessionsync::{NatKind, Record, SessionKey};

use super::translate::{self, IcmpKind};
use super::{ports, NatConfig, Translation};
use crate::graph::owner_of_hash;

/// A 32-bit mix of two words (the finaliser of splitmix64 over their combination):
/// deterministic, so every thread of the dataplane computes the same owner.
#[inline(always)]
fn mix(a: u64, b: u64) -> u32 {
    let x = (a ^ b.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((x ^ (x >> 29)) >> 32) as u32
}

/// The hash that places a source NAT session: its inside endpoint only.
#[inline(always)]
pub fn snat_hash(vpc: u32, proto: u8, inside_ip: u32, inside_port: u16) -> u32 {
    mix(
        (u64::from(vpc) << 8) | u64::from(proto),
        (u64::from(inside_ip) << 16) | u64::from(inside_port),
    )
}

/// The hash that places a floating-IP session: the remote endpoint and the VM's port.
#[inline(always)]
pub fn floating_hash(proto: u8, remote_ip: u32, remote_port: u16, vm_port: u16) -> u32 {
    mix(
        (u64::from(remote_ip) << 16) | u64::from(remote_port),
        (u64::from(vm_port) << 8) | u64::from(proto) | (1 << 40),
    )
}

/// The remote port as sessions record it (ICMP echo: none).
#[inline(always)]
fn remote_port(proto: u8, port: u16) -> u16 {
    if proto == 1 {
        0
    } else {
        port
    }
}

/// The worker of `workers` owning an outbound packet (`ip` from its IPv4 header on) from
/// VPC `vpc` ([`super::ROUTED_VPC`] for the routed inside port); `None` when NAT does not
/// translate it (no rule, or nothing NAT can parse): it stays where it is.
#[inline]
pub fn outbound(cfg: &NatConfig, vpc: u32, ip: &[u8], workers: usize) -> Option<usize> {
    if ip.len() < 20 {
        return None;
    }
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let tr = cfg.translation_for(vpc, src)?;
    let t = translate::tuple(ip).ok()?;
    let hash = match tr {
        Translation::Snat { .. } => snat_hash(vpc, t.proto, t.src, t.sport),
        Translation::FloatingIp { .. } => {
            floating_hash(t.proto, t.dst, remote_port(t.proto, t.dport), t.sport)
        }
    };
    Some(owner_of_hash(hash, workers))
}

/// The worker of `workers` owning an inbound packet (`ip` from its IPv4 header on) to one
/// of the outside addresses, an ICMP error about a translated packet included; `None` when
/// it is not NAT traffic, or the port is below the NAT range (the gateway's own services):
/// it stays where it is.
#[inline]
pub fn inbound(cfg: &NatConfig, ip: &[u8], workers: usize) -> Option<usize> {
    if ip.len() < 20 {
        return None;
    }
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    if !cfg.is_outside_address(dst) {
        return None;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] == 1 && ip.len() > hl && translate::icmp_kind(ip[hl]) == IcmpKind::Error {
        // The quoted packet left from the outside address to the remote.
        let q = translate::inner_tuple(ip).ok()?;
        return if cfg.floating_by_outside(q.src).is_some() {
            let hash = floating_hash(q.proto, q.dst, remote_port(q.proto, q.dport), q.sport);
            Some(owner_of_hash(hash, workers))
        } else {
            ports::owner(q.sport, workers)
        };
    }
    let t = translate::tuple(ip).ok()?;
    if cfg.floating_by_outside(dst).is_some() {
        let hash = floating_hash(t.proto, t.src, remote_port(t.proto, t.sport), t.dport);
        Some(owner_of_hash(hash, workers))
    } else {
        ports::owner(t.dport, workers)
    }
}

/// The worker of `workers` whose table a synced session belongs in: the owner of its
/// packets ([`outbound`] and, for source NAT, [`inbound`] agree when master and backup
/// run as many workers).
pub fn of_record(r: &Record, workers: usize) -> usize {
    let k = &r.key;
    let hash = match r.nat {
        NatKind::FloatingIp => floating_hash(
            k.proto,
            u32::from(k.remote_ip),
            k.remote_port,
            k.inside_port,
        ),
        _ => snat_hash(k.vpc, k.proto, u32::from(k.inside_ip), k.inside_port),
    };
    owner_of_hash(hash, workers)
}

/// The workers that may hold the session of `k` (a removal carries no translation kind):
/// its owner as source NAT and as a floating IP (the same worker twice when they agree).
pub fn of_key(k: &SessionKey, workers: usize) -> [usize; 2] {
    let snat = snat_hash(k.vpc, k.proto, u32::from(k.inside_ip), k.inside_port);
    let fip = floating_hash(
        k.proto,
        u32::from(k.remote_ip),
        k.remote_port,
        k.inside_port,
    );
    [owner_of_hash(snat, workers), owner_of_hash(fip, workers)]
}
