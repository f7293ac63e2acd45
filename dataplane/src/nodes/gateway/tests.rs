//! North-south end to end on heap buffers: a VM on host a, its VPC's gateway group on
//! host g (source NAT, a floating IP, hairpinning), a host on the external network.

use crate::graph::DropReason;
use crate::overlay::gateway::GATEWAY_MAC;
use crate::overlay::{Location, RouteResult, ROUTER_MAC};
use crate::testkit::overlay::*;
use crate::wire::ipv4::{self, PROTO_ICMP, PROTO_TCP};
use crate::wire::tcp::{ACK, SYN};
use crate::wire::{be16, be32, geneve};

const UL: usize = 0;
const EXT: usize = 1;
const VM1: usize = 1;
const VM2: usize = 2;
/// Offset of the inner frame in a Geneve packet without options.
const INNER: usize = 50;

/// An external host's frame to the gateway's external port.
fn from_outside(src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    vm_frame(EXT_HOST_MAC, EXT_MAC_G, src, dst, proto, l4)
}

#[test]
fn a_vpc_with_a_gateway_group_routes_outside_to_the_groups_tunnel_address() {
    let a = host_snapshot("a", &gateway_objects());
    let ov = &a.overlay;
    let blue = ov.by_vni[&100];
    let red = ov.by_vni[&200];
    let RouteResult::Endpoint(e) = ov.route(blue, ip("198.51.100.7")) else {
        panic!("blue has a default route to its gateway group");
    };
    let gw = ov.endpoint(e).unwrap();
    assert_eq!(gw.at, Location::Remote(ip(TUNNEL)));
    assert_eq!(gw.mac, GATEWAY_MAC);
    assert_eq!(ov.route(red, ip("198.51.100.7")), RouteResult::NoRoute);
    // A compute host has no gateway role; the gateway host has one.
    assert!(ov.gateway.is_none());
    let g = gateway_snapshot(&gateway_objects());
    let role = g.overlay.gateway.as_ref().expect("g is a member of gw");
    assert_eq!(role.group, "gw");
    assert_eq!(g.overlay.tunnel_ip, ip(TUNNEL));
    let addrs: Vec<String> = role
        .external_addresses
        .iter()
        .map(|(a, l)| format!("{a}/{l}"))
        .collect();
    assert_eq!(addrs, ["203.0.113.10/24", "203.0.113.20/24"]);
    // Two SNAT rules (one per blue subnet) and the floating IP, all under VNI 100.
    assert_eq!(role.nat.snat().len(), 2);
    assert!(role.nat.snat().iter().all(|r| r.vpc == 100));
    assert_eq!(role.nat.floating_ips()[0].vpc, 100);
    assert_eq!(g.nat.outside_port, Some(1));
}

/// VPC blue's source NAT rule covers each of its subnets; a rule of subnet blue-a itself
/// wins for blue-a, whether it comes before or after the VPC's rule among the objects
/// (before, the VPC-wide rule's copy for blue-a won when it came later).
#[test]
fn a_subnets_own_source_nat_rule_wins_over_its_vpcs() {
    use crate::nat::Translation;
    use aegis_api::controlplane::v1::object::Spec;
    use aegis_api::controlplane::v1::{Object, SnatRule};
    for (name, first) in [("aa-blue-a", true), ("zz-blue-a", false)] {
        let mut objects = gateway_objects();
        for o in &mut objects {
            if let Some(Spec::GatewayGroup(g)) = &mut o.spec {
                g.external_addresses.push("203.0.113.30".into());
            }
        }
        let rule = Object {
            name: name.into(),
            spec: Some(Spec::SnatRule(SnatRule {
                vpc: "blue".into(),
                subnet: "blue-a".into(),
                gateway_group: "gw".into(),
                external_address: "203.0.113.30".into(),
            })),
            ..Object::default()
        };
        if first {
            objects.insert(0, rule);
        } else {
            objects.push(rule);
        }
        let g = gateway_snapshot(&objects);
        let snat = |ip| {
            Some(Translation::Snat {
                ip,
                endpoint_dependent: true,
            })
        };
        assert_eq!(
            g.nat.translation_for(100, ip("10.1.1.5")),
            snat(ip("203.0.113.30")),
            "{name}"
        );
        assert_eq!(
            g.nat.translation_for(100, ip("10.1.2.5")),
            snat(ip("203.0.113.10")),
            "{name}"
        );
        // Red has the same addresses and no rule.
        assert_eq!(g.nat.translation_for(200, ip("10.1.1.5")), None, "{name}");
    }
}

#[test]
fn a_gateway_member_without_an_outside_port_is_refused_with_a_clear_error() {
    use crate::overlay::build::{build, PortLookup};
    struct NoNat;
    impl PortLookup for NoNat {
        fn port(&self, _: &str) -> Option<(u16, u16)> {
            None
        }
        fn count(&self) -> usize {
            2
        }
        fn port_with_address(&self, _: std::net::Ipv4Addr) -> Option<(u16, u16)> {
            Some((0, 1500))
        }
    }
    let mut slots = Default::default();
    let e = build("g", 1, &gateway_objects(), &NoNat, &mut slots).unwrap_err();
    assert!(e.contains("no [nat] outside_port"), "{e}");
}

/// b3 (blue, 10.1.2.13, on host a) opens a TCP connection to the external host: host a
/// sends it to the tunnel address, g translates it to 203.0.113.10 and forwards it; the
/// reply comes back to b3 through g and host a.
#[test]
fn source_nat_through_the_gateway_and_the_reply_back_to_the_vm() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let syn = vm_frame(
        B3_MAC,
        ROUTER_MAC,
        "10.1.2.13",
        "203.0.113.50",
        PROTO_TCP,
        &tcp(40000, 80, SYN),
    );
    let wire = one_out(&mut a, VM2, syn, UL);
    assert_eq!(&wire[0..6], &UL_MAC_G, "to the tunnel address's MAC");
    assert_eq!(be32(&wire, 14 + 16), ip(TUNNEL));
    assert_eq!(&wire[INNER..INNER + 6], &GATEWAY_MAC);
    assert_eq!(
        wire[INNER + 14 + 8],
        63,
        "the VPC router decremented the TTL"
    );

    let out = one_out(&mut g, UL, wire, EXT);
    assert_eq!(&out[0..6], &EXT_HOST_MAC);
    assert_eq!(&out[6..12], &EXT_MAC_G);
    let o = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((o.src(), o.dst()), (ip("203.0.113.10"), ip("203.0.113.50")));
    assert_eq!(o.ttl(), 62, "the gateway is one more router hop");
    assert!(crate::wire::checksum::verify(&out[14..34]));
    let nat_port = be16(&out, 34);

    // The reply, from outside to the SNAT address and port.
    let reply = from_outside(
        "203.0.113.50",
        "203.0.113.10",
        PROTO_TCP,
        &tcp(80, nat_port, SYN | ACK),
    );
    let back = one_out(&mut g, EXT, reply, UL);
    assert_eq!(be32(&back, 14 + 16), ip("10.88.0.11"), "to b3's host");
    let gnv = geneve::Packet::new_checked(&back[42..]).unwrap();
    assert_eq!(gnv.vni(), 100);
    assert_eq!(&back[INNER..INNER + 6], &B3_MAC);
    assert_eq!(&back[INNER + 6..INNER + 12], &ROUTER_MAC);
    let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
    assert_eq!(
        (inner.src(), inner.dst()),
        (ip("203.0.113.50"), ip("10.1.2.13"))
    );
    assert_eq!(
        be16(&back, INNER + 34 + 2),
        40000,
        "the VM's own port again"
    );
    // Host a admits the reply of b3's own connection and delivers it.
    let delivered = one_out(&mut a, UL, back, VM2);
    assert_eq!(&delivered[0..6], &B3_MAC);
}

/// b1 has a floating IP: its traffic leaves from it with its own port, and a connection
/// from outside to the floating IP reaches b1's host.
#[test]
fn a_floating_ip_translates_both_ways_keeping_ports() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let ping = vm_frame(
        B1_MAC,
        ROUTER_MAC,
        "10.1.1.11",
        "203.0.113.50",
        PROTO_ICMP,
        &echo(77),
    );
    let wire = one_out(&mut a, VM1, ping, UL);
    let out = one_out(&mut g, UL, wire, EXT);
    let o = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(o.src(), ip("203.0.113.20"));
    assert_eq!(be16(&out, 34 + 4), 77, "a floating IP keeps the echo id");

    let syn = from_outside(
        "203.0.113.50",
        "203.0.113.20",
        PROTO_TCP,
        &tcp(5555, 22, SYN),
    );
    let back = one_out(&mut g, EXT, syn, UL);
    assert_eq!(be32(&back, 14 + 16), ip("10.88.0.11"));
    let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
    assert_eq!(inner.dst(), ip("10.1.1.11"));
    assert_eq!(be16(&back, INNER + 34 + 2), 22);
}

/// b3 reaches b1 by b1's floating IP: g translates the source (SNAT) and the destination
/// (the floating IP) and sends the packet straight back into the VPC.
#[test]
fn hairpinning_to_a_floating_ip_goes_back_into_the_vpc() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let syn = vm_frame(
        B3_MAC,
        ROUTER_MAC,
        "10.1.2.13",
        "203.0.113.20",
        PROTO_TCP,
        &tcp(41000, 22, SYN),
    );
    let wire = one_out(&mut a, VM2, syn, UL);
    let back = one_out(&mut g, UL, wire, UL);
    assert_eq!(be32(&back, 14 + 16), ip("10.88.0.11"));
    assert_eq!(&back[INNER..INNER + 6], &B1_MAC);
    let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
    assert_eq!(
        (inner.src(), inner.dst()),
        (ip("203.0.113.10"), ip("10.1.1.11")),
        "b1 sees the connection from blue's SNAT address"
    );
    assert!(crate::wire::checksum::verify(&back[INNER + 14..INNER + 34]));
}

#[test]
fn what_the_gateway_cannot_serve_is_dropped_with_its_reason() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    // No route out of the external port for 192.0.2.9.
    let f = vm_frame(
        B3_MAC,
        ROUTER_MAC,
        "10.1.2.13",
        "192.0.2.9",
        PROTO_ICMP,
        &echo(1),
    );
    let wire = one_out(&mut a, VM2, f, UL);
    let out = g.run(UL as u16, std::slice::from_ref(&wire));
    assert!(out.iter().all(Vec::is_empty));
    assert_eq!(g.drops(DropReason::GatewayNoExternalRoute), 1);
    // The same packet from VPC red (VNI 200), which no rule covers.
    let mut red = wire;
    red[42 + 4..42 + 7].copy_from_slice(&200u32.to_be_bytes()[1..]);
    let ext_dst = ip("203.0.113.50").to_be_bytes();
    red[INNER + 14 + 16..INNER + 14 + 20].copy_from_slice(&ext_dst);
    let out = g.run(UL as u16, &[red]);
    assert!(out.iter().all(Vec::is_empty));
    assert_eq!(g.drops(DropReason::NatNoRule), 1, "{:?}", g.drop_summary());
    // A reply to a NAT address with no session stays the gateway's own (not forwarded).
    let stray = from_outside("203.0.113.50", "203.0.113.10", PROTO_TCP, &tcp(80, 9, ACK));
    let out = g.run(EXT as u16, &[stray]);
    assert!(out[UL].is_empty(), "nothing goes into the overlay");
}

#[test]
fn a_ttl_that_runs_out_at_the_gateway_gets_time_exceeded_back_over_the_overlay() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let mut f = vm_frame(
        B3_MAC,
        ROUTER_MAC,
        "10.1.2.13",
        "203.0.113.50",
        PROTO_ICMP,
        &echo(3),
    );
    f[14 + 8] = 2;
    let mut ipp = ipv4::Packet::new_unchecked(&mut f[14..]);
    ipp.fill_checksum();
    let wire = one_out(&mut a, VM2, f, UL);
    let back = one_out(&mut g, UL, wire, UL);
    assert_eq!(be32(&back, 14 + 16), ip("10.88.0.11"));
    let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
    assert_eq!(
        (inner.src(), inner.dst(), back[INNER + 34]),
        (
            ip("10.1.2.1"),
            ip("10.1.2.13"),
            crate::wire::icmp::TIME_EXCEEDED
        )
    );
    assert_eq!(g.drops(DropReason::Ip4TtlExpired), 1);
}

/// The fuzz target's invariant over mutated seeds, deterministically: every packet the
/// gateway is given is sent, dropped with a counted reason, consumed or held; none panics.
#[test]
fn mutated_gateway_frames_are_all_accounted_for() {
    let seeds = gateway_seed_frames();
    assert!(seeds.len() >= 7, "{} seeds", seeds.len());
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    // Valid first: they open sessions the mutated replies may hit.
    for (port, f) in &seeds {
        g.run_accounted(*port, std::slice::from_ref(f));
    }
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for round in 0..3000 {
        let (port, mut f) = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            let at = next() as usize % f.len();
            f[at] ^= (next() % 255 + 1) as u8;
        }
        if round % 7 == 0 {
            f.truncate(next() as usize % (f.len() + 1));
        }
        g.run_accounted(port, &[f]);
    }
}

/// An ICMP error from outside about a translated packet (port unreachable for b3's
/// datagram) reaches b3 with the quoted packet translated back: its socket sees it.
#[test]
fn an_icmp_error_from_outside_is_translated_back_to_the_vm() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let mut udp = tcp(40500, 53, 0)[..8].to_vec();
    udp[4..6].copy_from_slice(&8u16.to_be_bytes());
    let dgram = vm_frame(B3_MAC, ROUTER_MAC, "10.1.2.13", "203.0.113.50", 17, &udp);
    let wire = one_out(&mut a, VM2, dgram, UL);
    let out = one_out(&mut g, UL, wire, EXT);
    // Port unreachable from x1, quoting the translated datagram's header and 8 bytes.
    let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&out[14..14 + 28]);
    let c = crate::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let err = from_outside("203.0.113.50", "203.0.113.10", PROTO_ICMP, &icmp);
    let back = one_out(&mut g, EXT, err, UL);
    assert_eq!(be32(&back, 14 + 16), ip("10.88.0.11"), "to b3's host");
    let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
    assert_eq!(inner.dst(), ip("10.1.2.13"));
    let quoted = INNER + 14 + 20 + 8;
    assert_eq!(
        be32(&back, quoted + 12),
        ip("10.1.2.13"),
        "quoted source back"
    );
    assert_eq!(be16(&back, quoted + 20), 40500, "quoted source port back");
}

/// Sets a frame's IPv4 TTL and DF bit (checksum fixed).
fn with_ttl_df(mut f: Vec<u8>, ttl: u8, df: bool) -> Vec<u8> {
    f[14 + 8] = ttl;
    if df {
        f[14 + 6] |= 0x40;
    } else {
        f[14 + 6] &= !0x40;
    }
    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    f
}

/// From the external network to b1's floating IP: TTL 1 gets time exceeded, a packet
/// larger than the overlay MTU with DF gets fragmentation needed with that MTU — both back
/// out of the external port to the sender, from the port's address, quoting the packet as
/// it was sent (to the floating IP, port 22) — and without DF it is dropped (the gateway
/// does not fragment).
#[test]
fn inbound_packets_that_cannot_enter_the_overlay_are_answered_like_a_router() {
    use crate::wire::icmp::{DEST_UNREACHABLE, TIME_EXCEEDED};
    let mut g = HostPipeline::gateway(&gateway_objects(), 1024);
    let mtu = g.snap.overlay.mtu;
    let quoted = |err: &[u8]| {
        let q = &err[14 + 20 + 8..];
        assert!(
            crate::wire::checksum::verify(&q[..20]),
            "quoted header intact"
        );
        (be32(q, 12), be32(q, 16), be16(q, 22))
    };
    let syn = from_outside(
        "203.0.113.50",
        "203.0.113.20",
        PROTO_TCP,
        &tcp(5555, 22, SYN),
    );
    let err = one_out(&mut g, EXT, with_ttl_df(syn, 1, true), EXT);
    let o = ipv4::Packet::new_checked(&err[14..]).expect("valid error");
    assert_eq!((o.src(), o.dst()), (ip("203.0.113.2"), ip("203.0.113.50")));
    assert_eq!(err[34], TIME_EXCEEDED);
    assert_eq!(
        quoted(&err),
        (ip("203.0.113.50"), ip("203.0.113.20"), 22),
        "the packet as the sender sent it"
    );
    assert_eq!(g.drops(DropReason::Ip4TtlExpired), 1);

    let mut l4 = tcp(5556, 22, SYN);
    l4.resize(usize::from(mtu), 0);
    let big = from_outside("203.0.113.50", "203.0.113.20", PROTO_TCP, &l4);
    let err = one_out(&mut g, EXT, with_ttl_df(big.clone(), 64, true), EXT);
    assert_eq!((err[34], err[35]), (DEST_UNREACHABLE, 4));
    assert_eq!(be16(&err, 34 + 6), mtu, "the overlay MTU is reported");
    assert_eq!(quoted(&err), (ip("203.0.113.50"), ip("203.0.113.20"), 22));
    assert_eq!(g.drops(DropReason::Ip4MtuExceeded), 1);

    let out = g.run(EXT as u16, &[with_ttl_df(big, 64, false)]);
    assert!(out.iter().all(Vec::is_empty));
    assert_eq!(g.drops(DropReason::Ip4FragmentationUnsupported), 1);
    // A packet that fits goes in as before.
    let ok = from_outside(
        "203.0.113.50",
        "203.0.113.20",
        PROTO_TCP,
        &tcp(5557, 22, SYN),
    );
    let inside = one_out(&mut g, EXT, ok, UL);
    assert_eq!(be32(&inside, INNER + 14 + 16), ip("10.1.1.11"));
}

// ----- NAT on two workers sharing hand-off rings -----

use crate::graph::{owner_of_hash, Handoff};
use crate::nat::owner::{floating_hash, snat_hash};
use crate::nat::{ports, InsideKey};

/// An ICMP echo reply body with identifier `id`.
fn icmp_reply(id: u16) -> Vec<u8> {
    let mut b = echo(id);
    b[0] = 0;
    b[2..4].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

/// Gateway host g as `n` workers sharing hand-off rings of `capacity` packets.
fn gateway_workers(n: usize, capacity: usize) -> Vec<HostPipeline> {
    let rings = Handoff::rings(n, capacity);
    (0..n)
        .map(|w| HostPipeline::gateway_worker(&gateway_objects(), 1024, w, rings.clone()))
        .collect()
}

/// Runs `frame` into worker `entry` on `port`, then lets every worker take what was handed
/// to it and run, until nothing is left in flight; returns what each worker sent (per
/// worker, per port) and how many hand-offs happened.
fn through(
    w: &mut [HostPipeline],
    entry: usize,
    port: usize,
    frame: Vec<u8>,
) -> (Vec<Vec<Vec<Vec<u8>>>>, usize) {
    let mut sent: Vec<Vec<Vec<Vec<u8>>>> = vec![vec![Vec::new(); 3]; w.len()];
    let first = w[entry].run(port as u16, &[frame]);
    for (p, f) in first.into_iter().enumerate() {
        sent[entry][p].extend(f);
    }
    let mut handed = 0;
    for _ in 0..4 {
        let mut any = false;
        for (i, h) in w.iter_mut().enumerate() {
            let n = h.graph.accept_handoff();
            if n == 0 {
                continue;
            }
            any = true;
            handed += n;
            for (p, f) in h.run(port as u16, &[]).into_iter().enumerate() {
                sent[i][p].extend(f);
            }
        }
        if !any {
            break;
        }
    }
    (sent, handed)
}

/// The one packet sent, by which worker and on which port.
fn only(sent: &[Vec<Vec<Vec<u8>>>]) -> (usize, usize, Vec<u8>) {
    let all: Vec<(usize, usize, &Vec<u8>)> = sent
        .iter()
        .enumerate()
        .flat_map(|(w, ports)| {
            ports
                .iter()
                .enumerate()
                .flat_map(move |(p, fs)| fs.iter().map(move |f| (w, p, f)))
        })
        .collect();
    assert_eq!(all.len(), 1, "expected one packet out of the workers");
    (all[0].0, all[0].1, all[0].2.clone())
}

fn all_drops(w: &[HostPipeline]) -> Vec<Vec<(&'static str, u64)>> {
    w.iter().map(HostPipeline::drop_summary).collect()
}

const BLUE: u32 = 100;

/// b3's TCP connections to the external host: the SYN enters the worker that does not
/// own it and is handed to the owner (by b3's address and port), which translates it from
/// a port of its own slice; the reply enters either worker and reaches the owner.
#[test]
fn with_two_workers_source_nat_is_done_by_the_owner_both_ways() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 64);
    let mut owners = [0; 2];
    for sport in 40000..40012u16 {
        let owner = owner_of_hash(snat_hash(BLUE, PROTO_TCP, ip("10.1.2.13"), sport), 2);
        owners[owner] += 1;
        let syn = vm_frame(
            B3_MAC,
            ROUTER_MAC,
            "10.1.2.13",
            "203.0.113.50",
            PROTO_TCP,
            &tcp(sport, 80, SYN),
        );
        let wire = one_out(&mut a, VM2, syn, UL);
        let (sent, handed) = through(&mut w, 1 - owner, UL, wire);
        assert_eq!(handed, 1, "sport {sport}: handed to its owner");
        let (by, port, out) = only(&sent);
        assert_eq!((by, port), (owner, EXT), "{:?}", all_drops(&w));
        let o = ipv4::Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(o.src(), ip("203.0.113.10"));
        let nat_port = be16(&out, 34);
        assert_eq!(
            ports::owner(nat_port, 2),
            Some(owner),
            "from the owner's slice"
        );

        // The reply enters worker sport % 2, whichever owns it.
        let reply = from_outside(
            "203.0.113.50",
            "203.0.113.10",
            PROTO_TCP,
            &tcp(80, nat_port, SYN | ACK),
        );
        let entry = usize::from(sport % 2);
        let (sent, handed) = through(&mut w, entry, EXT, reply);
        assert_eq!(handed, usize::from(entry != owner));
        let (by, port, back) = only(&sent);
        assert_eq!((by, port), (owner, UL), "{:?}", all_drops(&w));
        let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
        assert_eq!(inner.dst(), ip("10.1.2.13"));
        assert_eq!(
            be16(&back, INNER + 34 + 2),
            sport,
            "the VM's own port again"
        );
    }
    assert!(
        owners[0] > 0 && owners[1] > 0,
        "both workers own some: {owners:?}"
    );
    let sessions: Vec<usize> = w
        .iter()
        .map(|h| h.env.nat.as_ref().unwrap().len())
        .collect();
    assert_eq!(sessions, owners, "each session in its owner's table only");
    for h in &w {
        assert!(h.drop_summary().is_empty(), "{:?}", h.drop_summary());
    }
}

/// With endpoint-independent source NAT, one inside endpoint talking to two remotes gets
/// one outside port, from one worker, whichever worker the packets enter.
#[test]
fn with_two_workers_an_endpoint_independent_mapping_stays_on_one_worker_with_one_port() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 64);
    for h in &mut w {
        let cfg = &h.snap.nat;
        let mut snat = cfg.snat().to_vec();
        for r in &mut snat {
            r.endpoint_dependent = false;
        }
        let cfg = crate::nat::NatConfig::new(cfg.outside_port, snat, cfg.floating_ips().to_vec());
        h.snap.nat = std::sync::Arc::new(cfg);
    }
    let sport = 5000;
    let owner = owner_of_hash(snat_hash(BLUE, 17, ip("10.1.2.13"), sport), 2);
    let dgram = |dst: &str, dport: u16| {
        let mut udp = tcp(sport, dport, 0)[..8].to_vec();
        udp[4..6].copy_from_slice(&8u16.to_be_bytes());
        vm_frame(B3_MAC, ROUTER_MAC, "10.1.2.13", dst, 17, &udp)
    };
    // The first remote enters worker 0, the second (another address and port) worker 1.
    let wire = one_out(&mut a, VM2, dgram("203.0.113.50", 53), UL);
    let (sent, _) = through(&mut w, 0, UL, wire);
    let (by, port, out) = only(&sent);
    assert_eq!((by, port), (owner, EXT));
    let nat_port = be16(&out, 34);
    let wire = one_out(&mut a, VM2, dgram("203.0.113.51", 5353), UL);
    // 203.0.113.51 is not resolved yet: the owner holds the packet, translated.
    through(&mut w, 1, UL, wire);
    let t = w[owner].now_ns;
    let nat = w[owner].env.nat.as_ref().unwrap();
    for (remote, rport) in [("203.0.113.50", 53), ("203.0.113.51", 5353)] {
        let k = InsideKey {
            vpc: BLUE,
            proto: 17,
            inside_ip: ip("10.1.2.13"),
            inside_port: sport,
            remote_ip: ip(remote),
            remote_port: rport,
        };
        let s = nat.get_inside(&k, t).expect("a session on the owner");
        assert_eq!(s.outside_port, nat_port, "one port for the endpoint");
    }
    assert_eq!(nat.len(), 2);
    assert!(w[1 - owner].env.nat.as_ref().unwrap().is_empty());
}

/// b1's floating IP: its ping leaves from the owner of (remote, echo id) and the echo
/// reply, entering the other worker, comes back through it; a connection opened from
/// outside to the floating IP is opened on its owner whichever worker it enters.
#[test]
fn with_two_workers_a_floating_ip_is_translated_by_its_owner_both_ways() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 64);
    for id in [77u16, 78, 79, 80] {
        let owner = owner_of_hash(floating_hash(PROTO_ICMP, ip("203.0.113.50"), 0, id), 2);
        let ping = vm_frame(
            B1_MAC,
            ROUTER_MAC,
            "10.1.1.11",
            "203.0.113.50",
            PROTO_ICMP,
            &echo(id),
        );
        let wire = one_out(&mut a, VM1, ping, UL);
        let (sent, handed) = through(&mut w, 1 - owner, UL, wire);
        assert_eq!(handed, 1);
        let (by, port, out) = only(&sent);
        assert_eq!((by, port), (owner, EXT), "{:?}", all_drops(&w));
        let o = ipv4::Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(o.src(), ip("203.0.113.20"));
        assert_eq!(be16(&out, 34 + 4), id, "a floating IP keeps the echo id");
        let reply = from_outside("203.0.113.50", "203.0.113.20", PROTO_ICMP, &icmp_reply(id));
        let (sent, handed) = through(&mut w, 1 - owner, EXT, reply);
        assert_eq!(handed, 1);
        let (by, port, back) = only(&sent);
        assert_eq!((by, port), (owner, UL), "{:?}", all_drops(&w));
        let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
        assert_eq!(inner.dst(), ip("10.1.1.11"));
    }
    for sport in 5550..5556u16 {
        let owner = owner_of_hash(floating_hash(PROTO_TCP, ip("203.0.113.50"), sport, 22), 2);
        let syn = from_outside(
            "203.0.113.50",
            "203.0.113.20",
            PROTO_TCP,
            &tcp(sport, 22, SYN),
        );
        let (sent, _) = through(&mut w, 1 - owner, EXT, syn);
        let (by, port, back) = only(&sent);
        assert_eq!((by, port), (owner, UL));
        assert_eq!(be16(&back, INNER + 34 + 2), 22);
        let k = InsideKey {
            vpc: BLUE,
            proto: PROTO_TCP,
            inside_ip: ip("10.1.1.11"),
            inside_port: 22,
            remote_ip: ip("203.0.113.50"),
            remote_port: sport,
        };
        let t = w[owner].now_ns;
        assert!(w[owner]
            .env
            .nat
            .as_ref()
            .unwrap()
            .get_inside(&k, t)
            .is_some());
        assert!(w[1 - owner]
            .env
            .nat
            .as_ref()
            .unwrap()
            .get_inside(&k, t)
            .is_none());
    }
}

/// A port unreachable from outside about b3's translated datagram, entering the worker
/// that does not own the session, is handed to the owner (found from the quoted packet)
/// and translated back to b3.
#[test]
fn with_two_workers_an_icmp_error_is_translated_back_by_the_sessions_owner() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 64);
    for sport in [40500u16, 40501, 40502, 40503] {
        let owner = owner_of_hash(snat_hash(BLUE, 17, ip("10.1.2.13"), sport), 2);
        let mut udp = tcp(sport, 53, 0)[..8].to_vec();
        udp[4..6].copy_from_slice(&8u16.to_be_bytes());
        let dgram = vm_frame(B3_MAC, ROUTER_MAC, "10.1.2.13", "203.0.113.50", 17, &udp);
        let wire = one_out(&mut a, VM2, dgram, UL);
        let (sent, _) = through(&mut w, owner, UL, wire);
        let (_, _, out) = only(&sent);
        let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&out[14..14 + 28]);
        let c = crate::wire::checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let err = from_outside("203.0.113.50", "203.0.113.10", PROTO_ICMP, &icmp);
        let (sent, handed) = through(&mut w, 1 - owner, EXT, err);
        assert_eq!(handed, 1, "handed by the quoted packet's port");
        let (by, port, back) = only(&sent);
        assert_eq!((by, port), (owner, UL), "{:?}", all_drops(&w));
        let quoted = INNER + 14 + 20 + 8;
        assert_eq!(
            be32(&back, quoted + 12),
            ip("10.1.2.13"),
            "quoted source back"
        );
        assert_eq!(be16(&back, quoted + 20), sport, "quoted source port back");
    }
}

/// b3 reaches b1 by its floating IP with two workers: the source NAT by the owner of b3's
/// endpoint, the way back in by the owner of the floating-IP session (another hand-off
/// when they differ).
#[test]
fn with_two_workers_hairpinning_meets_both_owners() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 64);
    let mut two_hops = 0;
    for sport in 41000..41016u16 {
        let syn = vm_frame(
            B3_MAC,
            ROUTER_MAC,
            "10.1.2.13",
            "203.0.113.20",
            PROTO_TCP,
            &tcp(sport, 22, SYN),
        );
        let wire = one_out(&mut a, VM2, syn, UL);
        let (sent, handed) = through(&mut w, 0, UL, wire);
        two_hops += usize::from(handed == 2);
        let (_, port, back) = only(&sent);
        assert_eq!(port, UL, "{:?}", all_drops(&w));
        assert_eq!(&back[INNER..INNER + 6], &B1_MAC);
        let inner = ipv4::Packet::new_checked(&back[INNER + 14..]).unwrap();
        assert_eq!(
            (inner.src(), inner.dst()),
            (ip("203.0.113.10"), ip("10.1.1.11"))
        );
    }
    assert!(two_hops > 0, "some connections needed both hand-offs");
}

/// A hand-off ring that is full drops the packet, counted as `handoff_full`.
#[test]
fn with_two_workers_a_full_hand_off_ring_drops_and_counts() {
    let mut a = HostPipeline::with_objects("a", &gateway_objects(), 1024);
    let mut w = gateway_workers(2, 1);
    let mut wires = Vec::new();
    let mut sport = 42000u16;
    while wires.len() < 3 {
        sport += 1;
        if owner_of_hash(snat_hash(BLUE, PROTO_TCP, ip("10.1.2.13"), sport), 2) != 1 {
            continue;
        }
        let syn = vm_frame(
            B3_MAC,
            ROUTER_MAC,
            "10.1.2.13",
            "203.0.113.50",
            PROTO_TCP,
            &tcp(sport, 80, SYN),
        );
        wires.push(one_out(&mut a, VM2, syn, UL));
    }
    // Three packets for worker 1 in one burst on worker 0: one fits the ring.
    let out = w[0].run(UL as u16, &wires);
    assert!(out.iter().all(Vec::is_empty));
    assert_eq!(w[0].drops(DropReason::HandoffFull), 2);
    assert_eq!(w[1].graph.accept_handoff(), 1);
    let out = w[1].run(UL as u16, &[]);
    assert_eq!(out[EXT].len(), 1);
}
