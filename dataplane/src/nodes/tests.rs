//! Pipeline tests on heap buffers: real frames in, next node / transmitted bytes / drop
//! counters out.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::graph::{ControlEvent, DropReason, NodeId};
use crate::state::snapshot::{Mac, PortView};
use crate::wire::{arp, checksum, icmp, ipv4};

use crate::testkit::Rng;
pub(crate) use crate::testkit::{
    snapshot, Pipeline as Harness, GW_MAC, H1_MAC, H2_MAC, MAC0, MAC1,
};

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

/// An Ethernet + IPv4 frame with a valid header checksum.
pub(crate) fn ip_frame(
    dst_mac: Mac,
    src: &str,
    dst: &str,
    ttl: u8,
    proto: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + payload.len()];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&H1_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::emit_header(
        &mut f[14..],
        (20 + payload.len()) as u16,
        7,
        ttl,
        proto,
        ip(src),
        ip(dst),
    );
    f[34..].copy_from_slice(payload);
    f
}

/// An ICMP echo request from h1.
pub(crate) fn ping(dst: &str, ttl: u8) -> Vec<u8> {
    let mut body = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
    body.extend_from_slice(b"abcdefghijklmnopqrstuvwx");
    let c = checksum::checksum(&body);
    body[2..4].copy_from_slice(&c.to_be_bytes());
    ip_frame(MAC0, "10.0.1.2", dst, ttl, ipv4::PROTO_ICMP, &body)
}

fn udp(dst: &str, ttl: u8) -> Vec<u8> {
    ip_frame(
        MAC0,
        "10.0.1.2",
        dst,
        ttl,
        ipv4::PROTO_UDP,
        &[0x80, 0x00, 0x82, 0x9b, 0, 12, 0, 0, 1, 2, 3, 4],
    )
}

fn ip_of(frame: &[u8]) -> ipv4::Packet<&[u8]> {
    ipv4::Packet::new_checked(&frame[14..]).expect("valid IPv4")
}

#[test]
fn forwards_to_attached_host_with_rewrite() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("10.0.2.2", 64)]);
    assert_eq!(out[1].len(), 1, "one packet out of eth1");
    let f = &out[1][0];
    assert_eq!(&f[0..6], &H2_MAC);
    assert_eq!(&f[6..12], &MAC1);
    let p = ip_of(f);
    assert_eq!(p.ttl(), 63);
    assert_eq!(h.total_drops(), 0);
    let rt = &h.env.stats.nodes;
    assert_eq!(
        rt[NodeId::Ip4Forward as usize]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn forwards_via_gateway() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("10.9.3.4", 10)]);
    assert_eq!(out[1].len(), 1);
    assert_eq!(&out[1][0][0..6], &GW_MAC);
    assert_eq!(ip_of(&out[1][0]).ttl(), 9);
}

#[test]
fn answers_ping_to_own_address() {
    let mut h = Harness::new();
    let out = h.run(0, &[ping("10.0.2.1", 64)]);
    assert_eq!(out[0].len(), 1, "reply leaves the port it came from");
    let f = &out[0][0];
    assert_eq!(&f[0..6], &H1_MAC);
    let p = ip_of(f);
    assert_eq!(p.src(), ip("10.0.2.1"));
    assert_eq!(p.dst(), ip("10.0.1.2"));
    assert_eq!(p.ttl(), 64);
    let m = icmp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!(m.msg_type(), icmp::ECHO_REPLY);
    assert!(m.verify());
}

#[test]
fn ttl_expiry_sends_time_exceeded_from_ingress_address() {
    for ttl in [0u8, 1] {
        let mut h = Harness::new();
        let orig = udp("10.0.2.2", ttl);
        let out = h.run(0, std::slice::from_ref(&orig));
        assert_eq!(h.drops(DropReason::Ip4TtlExpired), 1);
        assert_eq!(out[1].len(), 0);
        assert_eq!(out[0].len(), 1);
        let p = ip_of(&out[0][0]);
        assert_eq!(p.src(), ip("10.0.1.1"));
        assert_eq!(p.dst(), ip("10.0.1.2"));
        let m = icmp::Packet::new_checked(p.payload()).unwrap();
        assert_eq!((m.msg_type(), m.code()), (icmp::TIME_EXCEEDED, 0));
        assert!(m.verify());
        // The quote is the original datagram (it fits in 576 bytes).
        assert_eq!(&p.payload()[8..], &orig[14..]);
    }
}

#[test]
fn no_route_sends_net_unreachable_and_counts() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("192.0.2.1", 64)]);
    assert_eq!(h.drops(DropReason::NoRoute), 1);
    let p = ip_of(&out[0][0]);
    let m = icmp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code()),
        (icmp::DEST_UNREACHABLE, icmp::unreach::NET)
    );
}

#[test]
fn blackhole_and_unreachable_routes() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("10.66.1.1", 64), udp("10.77.1.1", 64)]);
    assert_eq!(h.drops(DropReason::RouteBlackhole), 1);
    assert_eq!(h.drops(DropReason::RouteUnreachable), 1);
    assert_eq!(out[0].len(), 1, "only the unreachable route answers");
}

#[test]
fn udp_to_own_address_gets_port_unreachable_from_that_address() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("10.0.2.1", 64)]);
    assert_eq!(h.drops(DropReason::LocalUnreachable), 1);
    let p = ip_of(&out[0][0]);
    assert_eq!(p.src(), ip("10.0.2.1"));
    let m = icmp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code()),
        (icmp::DEST_UNREACHABLE, icmp::unreach::PORT)
    );
}

#[test]
fn mtu_exceeded_with_df_sends_frag_needed() {
    let mut h = Harness::new();
    let mut f = ip_frame(
        MAC0,
        "10.0.1.2",
        "10.0.2.2",
        64,
        ipv4::PROTO_UDP,
        &vec![0u8; 1600],
    );
    f[14 + 6] = 0x40; // DF
    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let nodf = ip_frame(
        MAC0,
        "10.0.1.2",
        "10.0.2.2",
        64,
        ipv4::PROTO_UDP,
        &vec![0u8; 1600],
    );
    let out = h.run(0, &[f, nodf]);
    assert_eq!(h.drops(DropReason::Ip4MtuExceeded), 1);
    assert_eq!(h.drops(DropReason::Ip4FragmentationUnsupported), 1);
    let p = ip_of(&out[0][0]);
    assert_eq!(p.total_len() as usize, 576);
    let m = icmp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!(m.code(), icmp::unreach::FRAG_NEEDED);
    assert_eq!(m.rest_of_header() & 0xffff, 1500);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut h = Harness::new();
    let burst: Vec<Vec<u8>> = (0..200).map(|_| udp("192.0.2.1", 64)).collect();
    let out = h.run(0, &burst);
    assert_eq!(h.drops(DropReason::NoRoute), 200);
    assert_eq!(out[0].len(), 100, "burst of 100 tokens");
    assert_eq!(
        h.env
            .stats
            .icmp_rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        100
    );
}

#[test]
fn no_error_about_an_error() {
    let mut h = Harness::new();
    let mut body = vec![3u8, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&udp("10.0.1.2", 64)[14..42]);
    let c = checksum::checksum(&body);
    body[2..4].copy_from_slice(&c.to_be_bytes());
    let f = ip_frame(MAC0, "10.0.1.2", "192.0.2.1", 64, ipv4::PROTO_ICMP, &body);
    let out = h.run(0, &[f]);
    assert_eq!(h.drops(DropReason::NoRoute), 1);
    assert!(out.iter().all(|p| p.is_empty()));
}

#[test]
fn arp_request_for_us_is_answered_and_sender_learned() {
    let mut h = Harness::new();
    let mut f = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.1")).to_vec();
    f.resize(60, 0); // Ethernet padding
    let out = h.run(0, &[f]);
    assert_eq!(out[0].len(), 1);
    let r = &out[0][0];
    assert_eq!(&r[0..6], &H1_MAC);
    assert_eq!(&r[6..12], &MAC0);
    let a = arp::Packet::new_checked(&r[14..]).unwrap();
    assert_eq!(a.operation(), arp::OP_REPLY);
    assert_eq!(a.sender_mac(), MAC0);
    assert_eq!(a.sender_ip(), ip("10.0.1.1"));
    assert_eq!(a.target_ip(), ip("10.0.1.2"));
    assert_eq!(
        h.events(),
        vec![ControlEvent::NeighbourSeen {
            port: 0,
            ip: ip("10.0.1.2"),
            mac: H1_MAC,
            reply: false
        }]
    );
}

#[test]
fn arp_for_other_address_or_wrong_port_is_dropped() {
    let mut h = Harness::new();
    // 10.0.2.1 is ours, but on eth1, not on the port the request came in on.
    let f = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.2.1")).to_vec();
    let g = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.77")).to_vec();
    let out = h.run(0, &[f, g]);
    assert!(out[0].is_empty());
    assert_eq!(h.drops(DropReason::ArpNotForUs), 2);
    assert!(h.events().is_empty());
}

#[test]
fn unresolved_next_hop_is_held_then_released() {
    let mut h = Harness::new();
    let out = h.run(0, &[udp("10.8.0.5", 64), udp("10.8.0.6", 64)]);
    assert!(out[1].is_empty());
    assert_eq!(h.total_drops(), 0);
    assert_eq!(
        h.events(),
        vec![ControlEvent::NeighbourMiss {
            port: 1,
            ip: ip("10.0.2.8")
        }]
    );
    // The control thread resolves it and publishes a new snapshot.
    let mut neigh = (*h.snap.neighbours).clone();
    neigh.insert((1, ip("10.0.2.8")), [2, 0, 0, 0, 1, 8]);
    h.snap.neighbours = Arc::new(neigh);
    h.graph.release_held(&h.snap, h.now_ns);
    let out = h.run(0, &[]);
    assert_eq!(out[1].len(), 2);
    assert_eq!(&out[1][0][0..6], &[2, 0, 0, 0, 1, 8]);
    assert_eq!(ip_of(&out[1][0]).ttl(), 63);
}

#[test]
fn held_packets_expire_with_a_reason() {
    let mut h = Harness::new();
    h.run(0, &[udp("10.8.0.5", 64)]);
    h.graph.release_held(&h.snap, h.now_ns + 10_000_000_000);
    assert_eq!(h.drops(DropReason::NeighbourUnresolved), 1);
    assert!(!h.graph.has_held());
}

#[test]
fn bad_packets_get_their_reasons_and_forwarding_continues() {
    let mut h = Harness::new();
    let good = udp("10.0.2.2", 64);
    let mut cases: Vec<(Vec<u8>, DropReason)> = vec![];
    cases.push((good[..10].to_vec(), DropReason::EthRunt));
    cases.push((good[..30].to_vec(), DropReason::Ip4Truncated));
    let mut b = good.clone();
    b[14] = 0x44;
    cases.push((b, DropReason::Ip4BadIhl));
    let mut b = good.clone();
    b[14] = 0x65;
    cases.push((b, DropReason::Ip4BadVersion));
    let mut b = good.clone();
    b[24] ^= 0xff;
    cases.push((b, DropReason::Ip4BadChecksum));
    let mut b = good.clone();
    b[16..18].copy_from_slice(&2000u16.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut b[14..]).fill_checksum();
    cases.push((b, DropReason::Ip4BadLength));
    let mut b = good.clone();
    b[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    cases.push((b, DropReason::EthUnknownType));
    let mut b = good.clone();
    b[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    cases.push((b, DropReason::EthNotForUs));
    let mut a = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.1")).to_vec();
    a[14 + 4] = 8; // hardware length 8
    cases.push((a, DropReason::ArpMalformed));
    let a = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.1"))[..30].to_vec();
    cases.push((a, DropReason::ArpMalformed));
    cases.push((
        ip_frame(MAC0, "127.0.0.1", "10.0.2.2", 64, 17, &[0; 8]),
        DropReason::Ip4MartianSource,
    ));
    cases.push((
        ip_frame(MAC0, "10.0.1.2", "224.0.0.5", 64, 17, &[0; 8]),
        DropReason::Ip4NotUnicast,
    ));
    // The bad packet first, and last behind good ones (`ethernet-input` hands a frame of
    // good packets on whole, and must notice the one that is not).
    for (frame, reason) in &cases {
        let before = h.drops(*reason);
        let out = h.run(0, &[frame.clone(), good.clone()]);
        assert_eq!(h.drops(*reason), before + 1, "{reason}");
        assert_eq!(
            out[1].len(),
            1,
            "good packet still forwarded after {reason}"
        );
        let out = h.run(0, &[good.clone(), good.clone(), frame.clone()]);
        assert_eq!(h.drops(*reason), before + 2, "{reason} behind good packets");
        assert_eq!(out[1].len(), 2, "good packets forwarded before {reason}");
    }
}

#[test]
fn port_down_drops_egress() {
    let mut h = Harness::new();
    let mut ports: Vec<PortView> = h.snap.ports.to_vec();
    ports[1].up = false;
    h.snap.ports = ports.into();
    let out = h.run(0, &[udp("10.0.2.2", 64)]);
    assert!(out[1].is_empty());
    assert_eq!(h.drops(DropReason::PortDown), 1);
}

#[test]
fn ethernet_padding_is_trimmed_before_forwarding() {
    let mut h = Harness::new();
    let mut f = udp("10.0.2.2", 64);
    let real = f.len();
    f.resize(real + 6, 0xee);
    let out = h.run(0, &[f]);
    assert_eq!(out[1][0].len(), real);
}

#[test]
fn mutated_frames_never_panic_and_every_packet_is_accounted_for() {
    let seeds: Vec<Vec<u8>> = vec![
        udp("10.0.2.2", 64),
        udp("10.9.1.1", 2),
        udp("10.8.1.1", 64),
        ping("10.0.2.1", 64),
        ping("10.0.2.2", 1),
        udp("10.0.1.1", 64),
        arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.1")).to_vec(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut h = Harness::new();
    for round in 0..3000 {
        let burst: Vec<Vec<u8>> = (0..1 + rng.below(40))
            .map(|_| {
                let mut f = seeds[rng.below(seeds.len())].clone();
                match rng.below(4) {
                    0 => {
                        let n = rng.below(f.len() + 1);
                        f.truncate(n);
                    }
                    1 => {
                        for _ in 0..1 + rng.below(4) {
                            let i = rng.below(f.len());
                            f[i] ^= 1 << rng.below(8);
                        }
                    }
                    2 => {
                        let i = 14 + rng.below(20);
                        if i < f.len() {
                            f[i] = rng.next_u64() as u8;
                        }
                    }
                    _ => f.extend((0..rng.below(64)).map(|_| rng.next_u64() as u8)),
                }
                f
            })
            .collect();
        h.run_accounted(rng.below(2) as u16, &burst);
        if round % 500 == 0 {
            h.now_ns += 5_000_000_000; // let held packets expire
            h.graph.release_held(&h.snap, h.now_ns);
        }
    }
    // Forwarding still works afterwards.
    let out = h.run_accounted(0, &[udp("10.0.2.2", 64)]);
    assert_eq!(out[1].len(), 1);
}

#[test]
fn unicast_ip_in_a_broadcast_frame_is_not_routed_or_answered() {
    let mut h = Harness::new();
    let mut f = udp("10.0.2.2", 64);
    f[0..6].copy_from_slice(&[0xff; 6]);
    let mut to_zero_net = udp("0.1.2.3", 64);
    to_zero_net[0..6].copy_from_slice(&MAC0);
    let to_loopback = udp("127.0.0.1", 64);
    let out = h.run(0, &[f, to_zero_net, to_loopback]);
    assert!(
        out.iter().all(|p| p.is_empty()),
        "nothing forwarded, no ICMP"
    );
    assert_eq!(h.drops(DropReason::Ip4LinkBroadcast), 1);
    assert_eq!(h.drops(DropReason::Ip4MartianDestination), 2);
}

#[test]
fn icmp_error_comes_from_the_port_towards_the_source() {
    // A packet from 10.9.0.7 (behind the gateway on eth1) arriving on eth0 with TTL 1:
    // the error goes back out of eth1, so it comes from eth1's address.
    let mut h = Harness::new();
    let f = ip_frame(MAC0, "10.9.0.7", "10.0.2.2", 1, ipv4::PROTO_UDP, &[0; 8]);
    let out = h.run(0, &[f]);
    assert_eq!(out[1].len(), 1);
    let p = ip_of(&out[1][0]);
    assert_eq!(p.src(), ip("10.0.2.1"));
    assert_eq!(p.dst(), ip("10.9.0.7"));
}

#[test]
fn vrrp_adverts_on_a_vrrp_port_go_to_the_control_thread_and_nowhere_else() {
    let mut h = Harness::new();
    let mut advert = ip_frame(MAC0, "10.0.1.2", "224.0.0.18", 255, 112, &[0x31; 16]);
    advert[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    // Not a VRRP port: multicast is not routed.
    let out = h.run(0, std::slice::from_ref(&advert));
    assert!(out.iter().all(|p| p.is_empty()));
    assert_eq!(h.drops(DropReason::Ip4NotUnicast), 1);
    assert!(h.events().is_empty());

    let mut ports: Vec<PortView> = h.snap.ports.to_vec();
    ports[0].vrrp = true;
    h.snap.ports = ports.into();
    let out = h.run(0, std::slice::from_ref(&advert));
    assert!(out.iter().all(|p| p.is_empty()), "consumed, not forwarded");
    match h.events().as_slice() {
        [ControlEvent::Vrrp(f)] => {
            assert_eq!(f.port, 0);
            assert_eq!(f.data(), &advert[..]);
        }
        other => panic!("expected one VRRP event, got {other:?}"),
    }
    // Longer than the hand-off buffer: dropped with its reason.
    let big = ip_frame(MAC0, "10.0.1.2", "10.0.1.1", 255, 112, &[0; 300]);
    h.run(0, &[big]);
    assert_eq!(h.drops(DropReason::VrrpOversize), 1);
    // A unicast advert (unicast peers) to our MAC behind routed packets is still VRRP.
    let unicast = ip_frame(MAC0, "10.0.1.2", "10.0.1.1", 255, 112, &[0x31; 16]);
    let out = h.run(0, &[udp("10.0.2.2", 64), unicast.clone()]);
    assert_eq!(out[1].len(), 1, "the routed packet");
    match h.events().as_slice() {
        [ControlEvent::Vrrp(f)] => assert_eq!(f.data(), &unicast[..]),
        other => panic!("expected one VRRP event, got {other:?}"),
    }
}

#[test]
fn a_virtual_mac_is_accepted_and_answers_arp_for_its_address() {
    let mut h = Harness::new();
    let vmac = [0, 0, 0x5e, 0, 1, 7];
    let mut ports: Vec<PortView> = h.snap.ports.to_vec();
    ports[0].vmacs = vec![("10.0.1.1".parse().unwrap(), vmac)];
    h.snap.ports = ports.into();
    // ARP for the address held with the virtual MAC is answered from it.
    let mut f = arp::request_frame(H1_MAC, ip("10.0.1.2"), ip("10.0.1.1")).to_vec();
    f.resize(60, 0);
    let out = h.run(0, &[f]);
    let r = &out[0][0];
    assert_eq!(&r[6..12], &vmac);
    assert_eq!(
        arp::Packet::new_checked(&r[14..]).unwrap().sender_mac(),
        vmac
    );
    // A ping sent to the virtual MAC is accepted (answered), one to another MAC is not.
    let mut p = ping("10.0.1.1", 64);
    p[0..6].copy_from_slice(&vmac);
    let out = h.run(0, &[p.clone()]);
    assert_eq!(out[0].len(), 1, "echo reply");
    p[0..6].copy_from_slice(&[0, 0, 0x5e, 0, 1, 8]);
    h.run(0, &[p]);
    assert_eq!(h.drops(DropReason::EthNotForUs), 1);
}
