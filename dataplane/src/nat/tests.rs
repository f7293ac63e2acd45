//! NAT table and translation tests on hand-built packets whose checksums are verified
//! from scratch after every rewrite.

use super::translate::{self, Tuple};
use super::*;
use crate::wire::checksum;
use aegis_sessionsync::{NatKind, Op};

const S: u64 = 1_000_000_000;
const VM: u32 = 0x0a01_010b; // 10.1.1.11
const VM2: u32 = 0x0a01_010c; // 10.1.1.12
const REMOTE: u32 = 0xc633_6407; // 198.51.100.7
const REMOTE2: u32 = 0xc633_6408; // 198.51.100.8
const EXT: u32 = 0xcb00_710a; // 203.0.113.10
const FIP: u32 = 0xcb00_7114; // 203.0.113.20

fn key(ip: u32, port: u16, remote: u32, rport: u16, proto: u8) -> InsideKey {
    InsideKey {
        vpc: 100,
        proto,
        inside_ip: ip,
        inside_port: port,
        remote_ip: remote,
        remote_port: rport,
    }
}

fn snat(ed: bool) -> Translation {
    Translation::Snat {
        ip: EXT,
        endpoint_dependent: ed,
    }
}

fn table() -> NatTable {
    NatTable::new(1024, 0, 1, NatTimeouts::default())
}

#[test]
fn endpoint_dependent_snat_maps_per_remote_and_replies_find_their_session() {
    let mut t = table();
    let a = key(VM, 40000, REMOTE, 443, 6);
    let b = key(VM, 40000, REMOTE2, 443, 6);
    let (ip_a, pa) = t.outbound(&a, snat(true), 0).unwrap();
    let (ip_b, pb) = t.outbound(&b, snat(true), 0).unwrap();
    assert_eq!((ip_a, ip_b), (EXT, EXT));
    assert_ne!(pa, pb, "a new mapping per remote");
    assert_eq!(t.outbound(&a, snat(true), S).unwrap(), (EXT, pa), "stable");
    for (k, p) in [(a, pa), (b, pb)] {
        let o = OutsideKey {
            proto: 6,
            outside_ip: EXT,
            outside_port: p,
            remote_ip: k.remote_ip,
            remote_port: 443,
        };
        assert_eq!(t.get_outside(&o, S).unwrap().inside, k);
    }
    // A reply from a remote that was never contacted on that port finds nothing.
    let stranger = OutsideKey {
        proto: 6,
        outside_ip: EXT,
        outside_port: pa,
        remote_ip: REMOTE2,
        remote_port: 443,
    };
    assert!(t.get_outside(&stranger, S).is_none());
    let ev: Vec<_> = t.take_events().collect();
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|r| r.op == Op::Add && r.nat == NatKind::SnatEndpointDependent));
}

#[test]
fn endpoint_independent_snat_keeps_one_port_per_inside_endpoint() {
    let mut t = table();
    let (_, p1) = t
        .outbound(&key(VM, 5000, REMOTE, 53, 17), snat(false), 0)
        .unwrap();
    let (_, p2) = t
        .outbound(&key(VM, 5000, REMOTE2, 53, 17), snat(false), 0)
        .unwrap();
    let (_, p3) = t
        .outbound(&key(VM2, 5000, REMOTE, 53, 17), snat(false), 0)
        .unwrap();
    assert_eq!(p1, p2, "same inside endpoint, same outside port");
    assert_ne!(p1, p3, "another endpoint gets another port");
    // An endpoint-dependent session never takes a port an independent mapping holds.
    for i in 0..200 {
        let (_, p) = t
            .outbound(&key(VM2, 6000 + i, REMOTE, 53, 17), snat(true), 0)
            .unwrap();
        assert_ne!(p, p1);
    }
}

#[test]
fn floating_ips_keep_ports_and_ports_come_from_the_workers_slice() {
    let mut t = table();
    let k = key(VM, 22, REMOTE, 51000, 6);
    assert_eq!(
        t.outbound(&k, Translation::FloatingIp { ip: FIP }, 0),
        Ok((FIP, 22))
    );
    let mut w1 = NatTable::new(64, 1, 2, NatTimeouts::default());
    for i in 0..50 {
        let (_, p) = w1
            .outbound(&key(VM, 1000 + i, REMOTE, 80, 6), snat(true), 0)
            .unwrap();
        assert!(w1.slice().contains(p));
        assert_eq!(ports::owner(p, 2), Some(1));
    }
}

#[test]
fn a_full_table_refuses_and_expired_sessions_are_swept_with_delete_events() {
    let mut t = NatTable::new(4, 0, 1, NatTimeouts::default());
    for i in 0..4 {
        t.outbound(&key(VM, 1000 + i, REMOTE, 53, 17), snat(true), 0)
            .unwrap();
    }
    assert_eq!(
        t.outbound(&key(VM, 2000, REMOTE, 53, 17), snat(true), 0),
        Err(NatError::Full)
    );
    t.take_events().count();
    // UDP lives 300 s after its last packet.
    t.touch(&key(VM, 1000, REMOTE, 53, 17), true, 0, 200 * S);
    // Kept alive past half its timeout: the backups hear of it (a refresh).
    let refresh: Vec<_> = t.take_events().collect();
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        (refresh[0].op, refresh[0].expires_in_ms),
        (Op::Update, 300_000)
    );
    assert_eq!(t.sweep(301 * S, 16), 3);
    assert_eq!(t.len(), 1);
    let ev: Vec<_> = t.take_events().collect();
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|r| r.op == Op::Delete));
    assert!(t
        .outbound(&key(VM, 2000, REMOTE, 53, 17), snat(true), 301 * S)
        .is_ok());
}

/// NAT of VPC 100 on port 1: 10.1.1.0/24 to EXT (endpoint-dependent), VM's floating IP FIP,
/// and whatever `more` rules.
fn granting(more: &[SnatRule], fip_inside: u32) -> NatConfig {
    let mut rules = vec![SnatRule {
        vpc: 100,
        source: "10.1.1.0/24".parse().unwrap(),
        address: std::net::Ipv4Addr::from(EXT),
        endpoint_dependent: true,
    }];
    rules.extend_from_slice(more);
    NatConfig::new(
        Some(1),
        rules,
        vec![FloatingIp {
            vpc: 100,
            inside: std::net::Ipv4Addr::from(fip_inside),
            outside: std::net::Ipv4Addr::from(FIP),
        }],
    )
}

/// A source NAT rule more specific than [`granting`]'s for VM2 alone, to REMOTE2's address.
fn vm2_to_remote2() -> SnatRule {
    SnatRule {
        vpc: 100,
        source: "10.1.1.12/32".parse().unwrap(),
        address: std::net::Ipv4Addr::from(REMOTE2),
        endpoint_dependent: true,
    }
}

/// Which sessions a configuration still grants: a rule or floating IP taken away revokes
/// (with a delete event for the backups, slice by slice), one that only stopped being the
/// rule that applies does not.
#[test]
fn sessions_are_revoked_when_their_floating_ip_or_rule_is_taken_away() {
    let mut t = table();
    let fip = Translation::FloatingIp { ip: FIP };
    t.outbound(&key(VM, 1000, REMOTE, 53, 17), fip, 0).unwrap();
    t.outbound(&key(VM2, 1000, REMOTE, 53, 17), snat(true), 0)
        .unwrap();
    t.outbound(&key(VM2, 1001, REMOTE2, 80, 6), snat(false), 0)
        .unwrap();
    t.take_events().count();
    let cfg = granting(&[], VM);
    assert!(cfg.grants(100, VM, NatKind::FloatingIp, FIP));
    assert!(
        !cfg.grants(100, VM2, NatKind::FloatingIp, FIP),
        "VM's, not VM2's"
    );
    assert!(
        !cfg.grants(101, VM, NatKind::FloatingIp, FIP),
        "another VPC"
    );
    assert!(cfg.grants(100, VM2, NatKind::SnatEndpointIndependent, EXT));
    assert!(!cfg.grants(100, VM2, NatKind::SnatEndpointDependent, FIP));
    assert!(!cfg.grants(100, 0x0a01_020b, NatKind::SnatEndpointDependent, EXT));
    assert_eq!(t.revoke(&cfg, 0..t.capacity(), 0), 0);

    // A more specific rule for VM2 to another address: VM2's new connections leave from
    // it, its existing ones keep their mapping (as conntrack does).
    let cfg = granting(&[vm2_to_remote2()], VM);
    assert_eq!(
        cfg.translation_for(100, VM2),
        Some(Translation::Snat {
            ip: REMOTE2,
            endpoint_dependent: true
        })
    );
    assert_eq!(t.revoke(&cfg, 0..t.capacity(), 0), 0);
    assert_eq!(t.len(), 3);

    // The floating IP moves to VM2: VM's session goes; slice by slice (the sessions sit
    // below the high-water mark), ranges past the end are clamped.
    let cfg = granting(&[], VM2);
    assert_eq!(t.high_water(), 3, "three sessions, the lowest slots");
    let removed = t.revoke(&cfg, 0..1, 0) + t.revoke(&cfg, 1..t.capacity() + 9, 0);
    assert_eq!((removed, t.len()), (1, 2));
    assert!(t.get_inside(&key(VM, 1000, REMOTE, 53, 17), 0).is_none());
    assert!(t
        .get_outside(
            &OutsideKey {
                proto: 17,
                outside_ip: FIP,
                outside_port: 1000,
                remote_ip: REMOTE,
                remote_port: 53
            },
            0
        )
        .is_none());
    let ev: Vec<_> = t.take_events().collect();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].op, ev[0].key.inside_ip), (Op::Delete, VM.into()));

    // NAT off: nothing is granted.
    let off = NatConfig::new(None, cfg.snat().to_vec(), cfg.floating_ips().to_vec());
    assert_eq!(t.revoke(&off, 0..t.capacity(), 0), 2);
    assert!(t.is_empty());
}

/// The revocation pass stops at the high-water mark: sessions reuse freed slots before
/// new ones, so the mark is the peak number of sessions, however long the churn.
#[test]
fn sessions_stay_below_the_high_water_mark_through_churn() {
    let mut t = table();
    let mut now = 0;
    for round in 0..20u16 {
        for i in 0..100 {
            t.outbound(&key(VM, round * 100 + i, REMOTE, 53, 17), snat(true), now)
                .unwrap();
        }
        // UDP lives 300 s: everything from this round expires and is swept.
        now += 301 * S;
        t.sweep(now, t.capacity());
        assert!(t.is_empty());
    }
    assert_eq!(t.high_water(), 100, "the peak, not 2,000 sessions made");
    for i in 0..60 {
        t.outbound(&key(VM2, i, REMOTE, 53, 17), snat(true), now)
            .unwrap();
    }
    let cfg = NatConfig::new(Some(1), Vec::new(), Vec::new());
    assert_eq!(
        t.revoke(&cfg, 0..t.high_water(), now),
        60,
        "all found below it"
    );
}

#[test]
fn a_session_kept_alive_is_refreshed_once_per_half_timeout() {
    let mut t = table();
    let k = key(VM, 5000, REMOTE, 53, 17);
    t.outbound(&k, snat(true), 0).unwrap();
    t.take_events().count();
    // UDP: 300 s. Packets every 10 s for 20 minutes.
    for i in 1..=120 {
        t.touch(&k, i % 2 == 0, 0, i * 10 * S);
    }
    let ev: Vec<_> = t.take_events().collect();
    // 150 s apart at most, never more often: at 160, 320, ... 1120 s (7 refreshes).
    assert_eq!(ev.len(), 7);
    assert!(ev
        .iter()
        .all(|r| r.op == Op::Update && r.expires_in_ms == 300_000));
}

#[test]
fn tcp_phases_set_the_timeout_and_are_synced() {
    let mut t = table();
    let k = key(VM, 40000, REMOTE, 443, 6);
    t.outbound(&k, snat(true), 0).unwrap();
    assert_eq!(t.get_inside(&k, 0).unwrap().phase, TcpPhase::Opening);
    t.touch(&k, true, 0x12, S); // SYN-ACK
    assert_eq!(t.get_inside(&k, S).unwrap().phase, TcpPhase::Opening);
    t.touch(&k, false, 0x10, S); // ACK
    assert_eq!(t.get_inside(&k, S).unwrap().phase, TcpPhase::Established);
    // Established lives 7440 s; transitory would have gone after 240 s.
    assert!(t.get_inside(&k, 1000 * S).is_some());
    t.touch(&k, false, 0x11, 1000 * S); // FIN-ACK
    assert_eq!(t.get_inside(&k, 1000 * S).unwrap().phase, TcpPhase::Closing);
    assert!(t.get_inside(&k, 1241 * S).is_none());
    let ops: Vec<(Op, u8)> = t.take_events().map(|r| (r.op, r.state)).collect();
    assert_eq!(ops, [(Op::Add, 1), (Op::Update, 2), (Op::Update, 3)]);
}

#[test]
fn a_backup_installs_the_masters_sessions_with_their_remaining_time() {
    let mut master = table();
    let k1 = key(VM, 40000, REMOTE, 443, 6);
    let k2 = key(VM2, 22, REMOTE2, 51000, 6);
    master.outbound(&k1, snat(true), 0).unwrap();
    master
        .outbound(&k2, Translation::FloatingIp { ip: FIP }, 0)
        .unwrap();
    master.touch(&k1, true, 0x10, 10 * S);
    master.touch(&k1, false, 0x10, 10 * S);
    let snap = master.snapshot(20 * S);
    assert_eq!(snap.len(), 2);
    let mut backup = table();
    for r in &snap {
        backup.install(r, 500 * S).unwrap();
    }
    for k in [k1, k2] {
        let m = master.get_inside(&k, 20 * S).unwrap();
        let b = backup.get_inside(&k, 500 * S).unwrap();
        assert_eq!(
            (m.outside_ip, m.outside_port, m.kind, m.phase),
            (b.outside_ip, b.outside_port, b.kind, b.phase)
        );
    }
    // k2 (TCP, never answered: transitory, 240 s from 0, so 220 s left at the snapshot)
    // expires 220 s after the install, not 240.
    assert!(backup.get_inside(&k2, 719 * S).is_some());
    assert!(backup.get_inside(&k2, 721 * S).is_none());
}

/// A session is one cache line, and the table's memory per session (array plus two
/// indexes at up to 7/8 load) stays far under the 128 bytes the issue allows a connection.
#[test]
fn a_session_is_one_cache_line() {
    assert_eq!(size_of::<Option<Session>>(), 64);
    let t = NatTable::new(262_144, 0, 1, NatTimeouts::default());
    let per_session = t.bytes() / 262_144;
    assert!(per_session <= 96, "{per_session} bytes per session");
}

/// A backup's stale session holding the outside key of a session the master streams is
/// replaced by it, and both indexes stay consistent: the stale inside key is gone, the new
/// one and its reply direction are found, and removing the new one leaves nothing behind.
#[test]
fn an_installed_session_replaces_a_stale_one_on_the_same_outside_key() {
    let mut master = table();
    let mut backup = table();
    let old = key(VM, 40000, REMOTE, 443, 17);
    let new = key(VM2, 40001, REMOTE, 443, 17);
    backup.outbound(&old, snat(true), 0).unwrap();
    let stale = *backup.get_inside(&old, 0).unwrap();
    // The master gave the same outside port to another VM (the backup missed the delete).
    let (ip, port) = master.outbound(&new, snat(true), 0).unwrap();
    assert_eq!((ip, port), (stale.outside_ip, stale.outside_port));
    let r = master.snapshot(0).pop().unwrap();
    backup.install(&r, 0).unwrap();
    assert!(backup.get_inside(&old, 0).is_none());
    assert_eq!(backup.len(), 1);
    let ok = OutsideKey {
        proto: 17,
        outside_ip: ip,
        outside_port: port,
        remote_ip: REMOTE,
        remote_port: 443,
    };
    assert_eq!(backup.get_outside(&ok, 0).unwrap().inside, new);
    assert!(backup.remove_key(&r.key, 0));
    assert!(backup.get_outside(&ok, 0).is_none() && backup.is_empty());
}

/// Many sessions created and expired in random order: every live one is found from both
/// sides, every gone one from neither (the indexes' deletions keep clusters reachable).
#[test]
fn indexes_stay_consistent_through_churn() {
    let mut t = NatTable::new(512, 0, 1, NatTimeouts::default()).without_events();
    let mut live: Vec<(InsideKey, OutsideKey)> = Vec::new();
    let mut x = 99u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..20_000u64 {
        let r = next();
        if live.len() < 400 && r % 3 != 0 {
            let k = key(
                VM + (r % 50) as u32,
                1024 + (r >> 8) as u16 % 200,
                REMOTE,
                53,
                17,
            );
            if t.get_inside(&k, step).is_some() {
                continue;
            }
            let (ip, port) = t.outbound(&k, snat(true), step).unwrap();
            let ok = OutsideKey {
                proto: 17,
                outside_ip: ip,
                outside_port: port,
                remote_ip: REMOTE,
                remote_port: 53,
            };
            live.push((k, ok));
        } else if !live.is_empty() {
            let (k, ok) = live.swap_remove((r >> 16) as usize % live.len());
            let sk = t
                .get_inside(&k, step)
                .unwrap()
                .record(Op::Delete, step, &NatTimeouts::default())
                .key;
            assert!(t.remove_key(&sk, step));
            assert!(t.get_outside(&ok, step).is_none());
        }
    }
    assert_eq!(t.len(), live.len());
    for (k, ok) in &live {
        assert_eq!(t.get_outside(ok, 20_000).unwrap().inside, *k);
    }
}

#[test]
fn a_lookup_hint_is_only_a_shortcut_any_wrong_hint_still_finds_the_right_session() {
    let mut t = table();
    let a = key(VM, 40000, REMOTE, 443, 17);
    let b = key(VM2, 40001, REMOTE2, 443, 17);
    let (_, pa) = t.outbound_touch(&a, snat(true), 0, 0).unwrap();
    let (_, pb) = t.outbound_touch(&b, snat(true), 0, 0).unwrap();
    let out = |k: &InsideKey, p: u16| OutsideKey {
        proto: 17,
        outside_ip: EXT,
        outside_port: p,
        remote_ip: k.remote_ip,
        remote_port: k.remote_port,
    };
    let slot_of = |t: &NatTable, k: &OutsideKey| t.find_outside(k, S).unwrap().0;
    let (sa, sb) = (slot_of(&t, &out(&a, pa)), slot_of(&t, &out(&b, pb)));
    assert_ne!(sa, sb);
    // The hint stage two returns for a key's hash is that key's slot.
    for (k, o, slot) in [(&a, out(&a, pa), sa), (&b, out(&b, pb), sb)] {
        let h = t.prefetch_inside(k);
        assert_eq!(t.prefetch_session(false, h), slot);
        let h = t.prefetch_outside(&o);
        assert_eq!(t.prefetch_session(true, h), slot);
    }
    // Right, wrong, empty, out-of-range and no hint: always the key's own session.
    for hint in [sa, sb, 7, 1 << 20, NO_HINT] {
        assert_eq!(
            t.outbound_touch_hinted(&a, hint, snat(true), 0, S).unwrap(),
            (EXT, pa),
            "hint {hint}"
        );
        assert_eq!(
            t.find_outside_hinted(&out(&b, pb), hint, S),
            Some((sb, b)),
            "hint {hint}"
        );
    }
    // A hint never makes an unknown key match, and a new key still gets its own session.
    let stranger = OutsideKey {
        remote_port: 444,
        ..out(&a, pa)
    };
    assert_eq!(t.find_outside_hinted(&stranger, sa, S), None);
    let c = key(VM, 40002, REMOTE, 443, 17);
    let (_, pc) = t.outbound_touch_hinted(&c, sa, snat(true), 0, S).unwrap();
    assert!(pc != pa && pc != pb);
    assert_eq!(t.len(), 3);
}

// ----- translation -----

fn ip_header(proto: u8, src: u32, dst: u32, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn pseudo_sum(ip: &[u8]) -> u32 {
    let len = ip.len() - 20;
    let mut p = Vec::new();
    p.extend_from_slice(&ip[12..20]);
    p.extend_from_slice(&[0, ip[9]]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    checksum::sum(&p, 0)
}

fn l4_packet(proto: u8, src: u32, sport: u16, dst: u32, dport: u16) -> Vec<u8> {
    let body = b"hello through the gateway";
    let l4len = if proto == 6 { 20 } else { 8 } + body.len();
    let mut p = ip_header(proto, src, dst, l4len);
    let mut l4 = vec![0u8; l4len - body.len()];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        l4[12] = 5 << 4;
        l4[13] = 0x18;
    } else {
        l4[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
    }
    l4.extend_from_slice(body);
    p.extend_from_slice(&l4);
    let at = 20 + if proto == 6 { 16 } else { 6 };
    let c = checksum::fold(checksum::sum(&p[20..], pseudo_sum(&p)));
    p[at..at + 2].copy_from_slice(&(!c).to_be_bytes());
    p
}

fn echo(src: u32, dst: u32, id: u16) -> Vec<u8> {
    let mut icmp = vec![8u8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&[0, 1]);
    icmp.extend_from_slice(b"ping payload");
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = ip_header(1, src, dst, icmp.len());
    p.extend_from_slice(&icmp);
    p
}

fn checksums_valid(p: &[u8]) -> bool {
    if !checksum::verify(&p[..20]) {
        return false;
    }
    match p[9] {
        6 | 17 => checksum::fold(checksum::sum(&p[20..], pseudo_sum(p))) == 0xffff,
        1 => checksum::verify(&p[20..]),
        _ => false,
    }
}

#[test]
fn source_and_destination_rewrites_keep_every_checksum_valid() {
    for proto in [6u8, 17] {
        let mut p = l4_packet(proto, VM, 40000, REMOTE, 443);
        assert!(checksums_valid(&p));
        translate::set_source(&mut p, EXT, 1777).unwrap();
        assert!(checksums_valid(&p), "proto {proto} after SNAT");
        assert_eq!(
            translate::tuple(&p).unwrap(),
            Tuple {
                proto,
                src: EXT,
                dst: REMOTE,
                sport: 1777,
                dport: 443
            }
        );
        // The reply's destination back to the VM.
        let mut r = l4_packet(proto, REMOTE, 443, EXT, 1777);
        translate::set_destination(&mut r, VM, 40000).unwrap();
        assert!(checksums_valid(&r), "proto {proto} after un-NAT");
        assert_eq!(r, l4_packet(proto, REMOTE, 443, VM, 40000));
    }
    let mut e = echo(VM, REMOTE, 7);
    translate::set_source(&mut e, EXT, 2001).unwrap();
    assert!(checksums_valid(&e));
    assert_eq!(translate::tuple(&e).unwrap().sport, 2001);
    // UDP without a checksum stays without one.
    let mut u = l4_packet(17, VM, 5000, REMOTE, 53);
    u[26] = 0;
    u[27] = 0;
    translate::set_source(&mut u, EXT, 1888).unwrap();
    assert_eq!(&u[26..28], &[0, 0]);
}

#[test]
fn an_icmp_error_from_outside_is_translated_back_to_the_vm() {
    // The VM's UDP datagram left as EXT:1777 -> REMOTE:53; REMOTE answers port unreachable.
    let original = l4_packet(17, VM, 5000, REMOTE, 53);
    let mut sent = original.clone();
    translate::set_source(&mut sent, EXT, 1777).unwrap();
    let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&sent[..28]);
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut err = ip_header(1, REMOTE, EXT, icmp.len());
    err.extend_from_slice(&icmp);

    let inner = translate::inner_tuple(&err).unwrap();
    assert_eq!((inner.src, inner.sport, inner.dst), (EXT, 1777, REMOTE));
    translate::icmp_error_to_inside(&mut err, VM, 5000).unwrap();
    assert!(checksum::verify(&err[..20]));
    assert!(checksum::verify(&err[20..]), "ICMP checksum");
    assert_eq!(
        &err[16..20],
        &VM.to_be_bytes(),
        "outer destination is the VM"
    );
    // The embedded header is now exactly the VM's original one (checksums included).
    assert_eq!(&err[28..56], &original[..28]);
}

#[test]
fn untranslatable_packets_are_reported_not_touched() {
    let mut p = l4_packet(17, VM, 5000, REMOTE, 53);
    p[6] = 0x00;
    p[7] = 0x10; // a later fragment
    let before = p.clone();
    assert_eq!(
        translate::set_source(&mut p, EXT, 1),
        Err(translate::Untranslatable::Fragment)
    );
    assert_eq!(p, before);
    let mut gre = ip_header(47, VM, REMOTE, 8);
    gre.extend_from_slice(&[0; 8]);
    assert_eq!(
        translate::set_source(&mut gre, EXT, 1),
        Err(translate::Untranslatable::Protocol)
    );
    for len in 0..28 {
        let mut short = l4_packet(17, VM, 5000, REMOTE, 53);
        short.truncate(len);
        assert!(translate::set_source(&mut short, EXT, 1).is_err(), "{len}");
    }
}

/// The owner of a session is the same from every side: an outbound packet, its reply (for
/// source NAT: by the port the owner allocated), an ICMP error quoting the translated
/// packet, and the synced record — for 3 workers, source NAT and floating IPs.
#[test]
fn every_side_of_a_session_finds_the_same_owner() {
    use std::net::Ipv4Addr;
    const WORKERS: usize = 3;
    let cfg = NatConfig::new(
        Some(1),
        vec![SnatRule {
            vpc: ROUTED_VPC,
            source: "10.1.1.0/24".parse().unwrap(),
            address: Ipv4Addr::from(EXT),
            endpoint_dependent: true,
        }],
        vec![FloatingIp {
            vpc: ROUTED_VPC,
            inside: Ipv4Addr::from(VM2),
            outside: Ipv4Addr::from(FIP),
        }],
    );
    let mut tables: Vec<NatTable> = (0..WORKERS)
        .map(|w| NatTable::new(1024, w, WORKERS, NatTimeouts::default()))
        .collect();
    let mut seen = [0usize; WORKERS];
    for (inside, proto, sport) in (0..40u16).flat_map(|i| {
        [
            (VM, 6, 40000 + i),
            (VM, 17, 5000 + i),
            (VM, 1, 700 + i),
            (VM2, 6, 22 + i),
        ]
    }) {
        let out = if proto == 1 {
            echo(inside, REMOTE, sport)
        } else {
            l4_packet(proto, inside, sport, REMOTE, 443)
        };
        let w = owner::outbound(&cfg, ROUTED_VPC, &out, WORKERS).expect("a NAT packet");
        seen[w] += 1;
        let mut translated = out.clone();
        assert_eq!(
            node::to_outside(
                &cfg,
                &mut tables[w],
                ROUTED_VPC,
                &mut translated,
                0,
                NO_HINT
            ),
            Ok(true)
        );
        let t = translate::tuple(&translated).unwrap();
        let reply = if proto == 1 {
            let mut r = echo(REMOTE, t.src, t.sport);
            r[20] = 0;
            r
        } else {
            l4_packet(proto, REMOTE, 443, t.src, t.sport)
        };
        assert_eq!(owner::inbound(&cfg, &reply, WORKERS), Some(w), "the reply");
        // Port unreachable quoting the translated packet's header and 8 bytes.
        let mut err = ip_header(1, REMOTE, t.src, 8 + 28);
        err.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        err.extend_from_slice(&translated[..28]);
        assert_eq!(
            owner::inbound(&cfg, &err, WORKERS),
            Some(w),
            "the ICMP error"
        );
        let k = InsideKey {
            vpc: ROUTED_VPC,
            proto,
            inside_ip: inside,
            inside_port: sport,
            remote_ip: REMOTE,
            remote_port: if proto == 1 { 0 } else { 443 },
        };
        let r = tables[w]
            .get_inside(&k, 0)
            .unwrap()
            .record(Op::Add, 0, &NatTimeouts::default());
        assert_eq!(owner::of_record(&r, WORKERS), w, "the synced record");
        assert!(owner::of_key(&r.key, WORKERS).contains(&w), "a removal");
    }
    assert!(
        seen.iter().all(|&n| n > 10),
        "spread over the workers: {seen:?}"
    );
}

/// The rewrite updates each checksum once for the address and the port together; over
/// many random addresses and ports (some unchanged, so either half is skipped), for TCP,
/// UDP and ICMP echo, in both directions, every checksum must still verify and the tuple
/// must be exactly the new one.
#[test]
fn rewrites_of_random_addresses_and_ports_keep_every_checksum_valid() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let r = next();
        let (src, dst) = (next() as u32, (next() >> 32) as u32);
        let (sport, dport) = (r as u16, (r >> 16) as u16);
        // Every fourth round keeps the address, every third keeps the port.
        let new_addr = if round % 4 == 0 { src } else { next() as u32 };
        let new_port = if round % 3 == 0 {
            sport
        } else {
            (r >> 32) as u16
        };
        for proto in [6u8, 17, 1] {
            let mut p = if proto == 1 {
                echo(src, dst, sport)
            } else {
                l4_packet(proto, src, sport, dst, dport)
            };
            translate::set_source(&mut p, new_addr, new_port).unwrap();
            assert!(checksums_valid(&p), "round {round} proto {proto} source");
            let t = translate::tuple(&p).unwrap();
            assert_eq!((t.src, t.sport, t.dst), (new_addr, new_port, dst));
            if proto != 1 {
                assert_eq!(t.dport, dport);
                let mut q = l4_packet(proto, src, sport, dst, dport);
                let t0 = translate::tuple(&q).unwrap();
                translate::set_destination_parsed(&mut q, &t0, new_addr, new_port).unwrap();
                assert!(
                    checksums_valid(&q),
                    "round {round} proto {proto} destination"
                );
                let t = translate::tuple(&q).unwrap();
                assert_eq!(
                    (t.src, t.sport, t.dst, t.dport),
                    (src, sport, new_addr, new_port)
                );
            }
        }
    }
}

/// A tuple that does not belong to the packet cannot make the rewrite index out of bounds.
#[test]
fn a_rewrite_with_a_foreign_tuple_fails_cleanly_on_a_short_packet() {
    let long = l4_packet(6, VM, 40000, REMOTE, 443);
    let t = translate::tuple(&long).unwrap();
    for len in 0..long.len() {
        let mut short = long[..len].to_vec();
        let _ = translate::set_source_parsed(&mut short, &t, EXT, 1);
        let _ = translate::set_destination_parsed(&mut short, &t, EXT, 1);
    }
}

/// `to_outside` translates a packet of a live session by the session, whichever rule now
/// applies to its source (as conntrack keeps a mapping); only a packet without a session
/// has its rule chosen, and one without a rule (or that NAT cannot carry and no rule wants)
/// leaves untouched.
#[test]
fn to_outside_keeps_a_live_sessions_mapping_and_chooses_a_rule_only_for_new_ones() {
    let mut t = table();
    let cfg = granting(&[], VM);
    let mut first = l4_packet(17, VM2, 5000, REMOTE, 53);
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut first, 0, NO_HINT),
        Ok(true)
    );
    let mapped = translate::tuple(&first).unwrap();
    assert_eq!(mapped.src, EXT);
    assert!(checksums_valid(&first));

    // A more specific rule for VM2 to REMOTE2's address: the live session keeps EXT, with
    // a hint or without; a new connection of VM2 takes the new rule.
    let cfg = granting(&[vm2_to_remote2()], VM);
    let hint = t.prefetch_session(false, t.prefetch_inside(&key(VM2, 5000, REMOTE, 53, 17)));
    for h in [hint, NO_HINT] {
        let mut again = l4_packet(17, VM2, 5000, REMOTE, 53);
        assert_eq!(
            node::to_outside(&cfg, &mut t, 100, &mut again, S, h),
            Ok(true)
        );
        assert_eq!(translate::tuple(&again).unwrap(), mapped, "hint {h}");
        assert!(checksums_valid(&again));
    }
    let mut new = l4_packet(17, VM2, 5001, REMOTE, 53);
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut new, S, NO_HINT),
        Ok(true)
    );
    assert_eq!(translate::tuple(&new).unwrap().src, REMOTE2);
    assert_eq!(t.len(), 2);

    // No rule for this source: untouched, no session.
    let stranger = 0x0a09_0909;
    let mut p = l4_packet(17, stranger, 5000, REMOTE, 53);
    let before = p.clone();
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut p, S, NO_HINT),
        Ok(false)
    );
    assert_eq!(p, before);
    let mut gre = ip_header(47, stranger, REMOTE, 8);
    gre.extend_from_slice(&[0; 8]);
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut gre, S, NO_HINT),
        Ok(false)
    );
    // A source with a rule whose packet NAT cannot carry is dropped with the reason.
    let mut gre = ip_header(47, VM, REMOTE, 8);
    gre.extend_from_slice(&[0; 8]);
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut gre, S, NO_HINT),
        Err(crate::graph::DropReason::NatUntranslatable)
    );
    // An expired session is not used: the packet opens a new one (by the rule now).
    let mut late = l4_packet(17, VM2, 5000, REMOTE, 53);
    assert_eq!(
        node::to_outside(&cfg, &mut t, 100, &mut late, 1000 * S, NO_HINT),
        Ok(true)
    );
    assert_eq!(translate::tuple(&late).unwrap().src, REMOTE2);
    assert_eq!(
        t.len(),
        2,
        "the expired session is replaced, not kept beside"
    );
}
