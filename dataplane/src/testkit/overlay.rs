//! Two compute hosts on heap buffers, for the overlay's unit tests, fuzzing and
//! benchmarks. Both are built from the same control-plane objects through the real
//! builder ([`crate::overlay::build::build`]):
//!
//! ```text
//! host a: port 0 ul0 10.88.0.11/24   port 1 vm1 = b1 (blue-a 10.1.1.11)   port 2 vm2 = b3 (blue-b 10.1.2.13)
//! host b: port 0 ul0 10.88.0.12/24   port 1 vm1 = b2 (blue-a 10.1.1.12)   port 2 vm2 = r1 (red-a 10.1.1.11)
//! VPC blue vni 100: blue-a 10.1.1.0/24, blue-b 10.1.2.0/24; VPC red vni 200: red-a 10.1.1.0/24
//! security group "default": ingress allowed from members of "default"; "web": tcp/80 from anywhere
//! ```
//!
//! With [`gateway_objects`], blue also leaves through gateway group `gw` (host g, tunnel
//! address 10.88.0.100, external network 203.0.113.0/24): source NAT to 203.0.113.10, and
//! b1's floating IP 203.0.113.20. [`HostPipeline::gateway`] is host g:
//!
//! ```text
//! host g: port 0 ul0 10.88.0.13/24 (+ the tunnel address)   port 1 ext0 203.0.113.2/24 (NAT outside)
//! ```

use std::net::Ipv4Addr;
use std::sync::Arc;

use aegis_api::controlplane::v1::{
    object::Spec, Direction, Host, HostAddress, Object, Port, RuleAction, SecurityGroup,
    SecurityRule, Subnet, Vpc,
};
use crossbeam_queue::ArrayQueue;

use crate::buf::heap::HeapBuf;
use crate::buf::PacketBuf;
use crate::graph::{DropReason, Graph, GraphEnv, WorkerStats};
use crate::overlay::build::{build, PortLookup};
use crate::overlay::secgroup::CounterSlots;
use crate::state::forwarding::{ForwardingConfig, IfAddr, PortConfig};
use crate::state::{Mac, Snapshot, Tables};
use crate::wire::{checksum, ipv4};

/// Host a's underlay MAC.
pub const UL_MAC_A: Mac = [2, 0xa, 0, 0, 0, 1];
/// Host b's underlay MAC.
pub const UL_MAC_B: Mac = [2, 0xb, 0, 0, 0, 1];
/// b1's MAC.
pub const B1_MAC: Mac = [2, 0, 0, 0, 1, 1];
/// b2's MAC.
pub const B2_MAC: Mac = [2, 0, 0, 0, 1, 2];
/// b3's MAC.
pub const B3_MAC: Mac = [2, 0, 0, 0, 1, 3];
/// r1's MAC.
pub const R1_MAC: Mac = [2, 0, 0, 0, 2, 1];
/// Host g's underlay MAC (also what the tunnel address resolves to).
pub const UL_MAC_G: Mac = [2, 0xc, 0, 0, 0, 1];
/// Host g's external port MAC.
pub const EXT_MAC_G: Mac = [2, 0xc, 0, 0, 0, 2];
/// A host on the external network (203.0.113.50).
pub const EXT_HOST_MAC: Mac = [2, 0xd, 0, 0, 0, 1];
/// The gateway group's tunnel address.
pub const TUNNEL: &str = "10.88.0.100";

/// [`objects`] plus host g, external network `ext`, gateway group `gw`, source NAT of VPC
/// blue and b1's floating IP.
pub fn gateway_objects() -> Vec<Object> {
    use aegis_api::controlplane::v1::{
        ExternalNetwork, FloatingIp, GatewayGroup, GatewayMember, SnatRule,
    };
    let obj = |name: &str, spec| Object {
        name: name.into(),
        spec: Some(spec),
        ..Object::default()
    };
    let mut v = objects();
    v.extend([
        obj(
            "g",
            Spec::Host(Host {
                role: 2,
                underlay_address: "10.88.0.13".into(),
                ..Host::default()
            }),
        ),
        obj(
            "ext",
            Spec::ExternalNetwork(ExternalNetwork {
                cidr: "203.0.113.0/24".into(),
                gateway_ip: "203.0.113.1".into(),
                vlan: 0,
            }),
        ),
        obj(
            "gw",
            Spec::GatewayGroup(GatewayGroup {
                external_network: "ext".into(),
                members: vec![GatewayMember {
                    host: "g".into(),
                    priority: 200,
                }],
                external_addresses: vec!["203.0.113.10".into()],
                vrid: 10,
                tunnel_address: TUNNEL.into(),
                ..Default::default()
            }),
        ),
        obj(
            "blue-out",
            Spec::SnatRule(SnatRule {
                vpc: "blue".into(),
                subnet: String::new(),
                gateway_group: "gw".into(),
                external_address: "203.0.113.10".into(),
            }),
        ),
        obj(
            "b1-fip",
            Spec::FloatingIp(FloatingIp {
                external_network: "ext".into(),
                address: "203.0.113.20".into(),
                port: "b1".into(),
                fixed_ip: String::new(),
            }),
        ),
    ]);
    v
}

/// The objects both hosts are built from.
pub fn objects() -> Vec<Object> {
    let obj = |name: &str, spec| Object {
        name: name.into(),
        spec: Some(spec),
        ..Object::default()
    };
    let host = |ip: &str| {
        Spec::Host(Host {
            role: 1,
            underlay_address: ip.into(),
            addresses: vec![HostAddress {
                port: "ul0".into(),
                address: format!("{ip}/24"),
            }],
            ..Host::default()
        })
    };
    let subnet = |vpc: &str, cidr: &str, gw: &str| {
        Spec::Subnet(Subnet {
            vpc: vpc.into(),
            cidr: cidr.into(),
            gateway_ip: gw.into(),
        })
    };
    let port = |vpc: &str, subnet: &str, mac: Mac, ip: &str, host: &str, dev: &str, sg: &str| {
        Spec::Port(Port {
            vpc: vpc.into(),
            subnet: subnet.into(),
            mac: crate::wire::ethernet::format_mac(&mac),
            ips: vec![ip.into()],
            host: host.into(),
            device: dev.into(),
            security_groups: vec![sg.into()],
        })
    };
    let rule = |id: &str, proto: &str, ports: u32, group: &str| SecurityRule {
        id: id.into(),
        direction: Direction::Ingress as i32,
        protocol: proto.into(),
        port_min: ports,
        port_max: ports,
        remote_group: group.into(),
        priority: 10,
        action: RuleAction::Allow as i32,
        ..SecurityRule::default()
    };
    vec![
        obj("a", host("10.88.0.11")),
        obj("b", host("10.88.0.12")),
        obj(
            "blue",
            Spec::Vpc(Vpc {
                vni: 100,
                ..Vpc::default()
            }),
        ),
        obj(
            "red",
            Spec::Vpc(Vpc {
                vni: 200,
                ..Vpc::default()
            }),
        ),
        obj("blue-a", subnet("blue", "10.1.1.0/24", "10.1.1.1")),
        obj("blue-b", subnet("blue", "10.1.2.0/24", "10.1.2.1")),
        obj("red-a", subnet("red", "10.1.1.0/24", "10.1.1.1")),
        obj(
            "default",
            Spec::SecurityGroup(SecurityGroup {
                rules: vec![rule("same-group", "any", 0, "default")],
                ..SecurityGroup::default()
            }),
        ),
        obj(
            "web",
            Spec::SecurityGroup(SecurityGroup {
                rules: vec![rule("http", "tcp", 80, "")],
                ..SecurityGroup::default()
            }),
        ),
        obj(
            "b1",
            port("blue", "blue-a", B1_MAC, "10.1.1.11", "a", "vm1", "default"),
        ),
        obj(
            "b3",
            port("blue", "blue-b", B3_MAC, "10.1.2.13", "a", "vm2", "default"),
        ),
        obj(
            "b2",
            port("blue", "blue-a", B2_MAC, "10.1.1.12", "b", "vm1", "default"),
        ),
        obj(
            "r1",
            port("red", "red-a", R1_MAC, "10.1.1.11", "b", "vm2", "web"),
        ),
    ]
}

struct Ports<'a>(&'a Tables);

impl PortLookup for Ports<'_> {
    fn nat_outside_port(&self) -> Option<u16> {
        self.0.local_nat().outside_port
    }
    fn port(&self, name: &str) -> Option<(u16, u16)> {
        let i = self.0.port_index(name).ok()?;
        Some((i, self.0.port_mtu(i)?))
    }
    fn count(&self) -> usize {
        self.0.port_count()
    }
    fn port_with_address(&self, ip: Ipv4Addr) -> Option<(u16, u16)> {
        (0..self.0.port_count() as u16)
            .find(|&i| self.0.port_addresses(i).iter().any(|a| a.addr == ip))
            .and_then(|i| Some((i, self.0.port_mtu(i)?)))
    }
}

/// The snapshot of host `name` ("a" or "b") built from `objects`.
pub fn host_snapshot(name: &str, objects: &[Object]) -> Snapshot {
    let (me, peer, my_mac, peer_mac) = if name == "a" {
        ("10.88.0.11", "10.88.0.12", UL_MAC_A, UL_MAC_B)
    } else {
        ("10.88.0.12", "10.88.0.11", UL_MAC_B, UL_MAC_A)
    };
    let mut ul0 = PortConfig::new("ul0");
    ul0.mac = Some(my_mac);
    ul0.addresses = vec![IfAddr::new(me.parse().unwrap(), 24)];
    let mut vm1 = PortConfig::new("vm1");
    vm1.mac = Some([2, 0xee, 0, 0, 0, 1]);
    let mut vm2 = PortConfig::new("vm2");
    vm2.mac = Some([2, 0xee, 0, 0, 0, 2]);
    let config = ForwardingConfig {
        ports: vec![ul0, vm1, vm2],
        ..ForwardingConfig::default()
    };
    let mut tables = Tables::new(&config).expect("valid config");
    tables
        .add_neighbour(0, peer.parse().unwrap(), peer_mac)
        .expect("neighbour");
    tables
        .add_neighbour(0, TUNNEL.parse().unwrap(), UL_MAC_G)
        .expect("neighbour");
    let mut slots = CounterSlots::default();
    let overlay = build(name, 7, objects, &Ports(&tables), &mut slots).expect("overlay builds");
    tables.set_overlay(Arc::new(overlay));
    (*tables.snapshot()).clone()
}

/// The snapshot of gateway host g built from `objects` (with [`gateway_objects`]: a
/// member of group `gw`, owning the tunnel address as its VRRP master would).
pub fn gateway_snapshot(objects: &[Object]) -> Snapshot {
    let mut ul0 = PortConfig::new("ul0");
    ul0.mac = Some(UL_MAC_G);
    ul0.addresses = vec![
        IfAddr::new("10.88.0.13".parse().unwrap(), 24),
        IfAddr::new(TUNNEL.parse().unwrap(), 32),
    ];
    let mut ext0 = PortConfig::new("ext0");
    ext0.mac = Some(EXT_MAC_G);
    ext0.addresses = vec![IfAddr::new("203.0.113.2".parse().unwrap(), 24)];
    let config = ForwardingConfig {
        ports: vec![ul0, ext0, PortConfig::new("spare")],
        ..ForwardingConfig::default()
    };
    let mut tables = Tables::new(&config).expect("valid config");
    for (port, ip, mac) in [
        (0, "10.88.0.11", UL_MAC_A),
        (0, "10.88.0.12", UL_MAC_B),
        (1, "203.0.113.50", EXT_HOST_MAC),
    ] {
        tables
            .add_neighbour(port, ip.parse().unwrap(), mac)
            .expect("neighbour");
    }
    tables.set_nat(Arc::new(crate::nat::NatConfig::new(
        Some(1),
        Vec::new(),
        Vec::new(),
    )));
    let mut slots = CounterSlots::default();
    let overlay = build("g", 7, objects, &Ports(&tables), &mut slots).expect("overlay builds");
    tables.set_controlplane_nat(overlay.gateway.as_ref().map(|g| &g.nat));
    tables.set_overlay(Arc::new(overlay));
    (*tables.snapshot()).clone()
}

/// One host's worker on heap buffers.
pub struct HostPipeline {
    /// The graph.
    pub graph: Graph<HeapBuf>,
    /// Its environment.
    pub env: GraphEnv,
    /// The snapshot.
    pub snap: Snapshot,
    /// The time given to the graph.
    pub now_ns: u64,
}

impl HostPipeline {
    /// Host `name` ("a" or "b") over [`objects`], with a connection table of `connections`.
    pub fn new(name: &str, connections: usize) -> HostPipeline {
        Self::with_objects(name, &objects(), connections)
    }

    /// Host `name` over `objects`.
    pub fn with_objects(name: &str, objects: &[Object], connections: usize) -> HostPipeline {
        let stats = Arc::new(WorkerStats::default());
        let events = Arc::new(ArrayQueue::new(64));
        HostPipeline {
            graph: Graph::new(3, stats.clone()),
            env: GraphEnv::with_connections(stats, events, connections),
            snap: host_snapshot(name, objects),
            now_ns: 1_000_000_000,
        }
    }

    /// Gateway host g over `objects`, with a NAT table of `sessions`.
    pub fn gateway(objects: &[Object], sessions: usize) -> HostPipeline {
        let stats = Arc::new(WorkerStats::default());
        let events = Arc::new(ArrayQueue::new(64));
        let mut env = GraphEnv::with_connections(stats, events, 64);
        env.nat = Some(
            crate::nat::NatTable::new(sessions, 0, 1, crate::nat::NatTimeouts::default())
                .without_events(),
        );
        HostPipeline {
            graph: Graph::new(3, env.stats.clone()),
            env,
            snap: gateway_snapshot(objects),
            now_ns: 1_000_000_000,
        }
    }

    /// Worker `me` of gateway host g's workers sharing the hand-off `rings` (as many
    /// workers as rings), with a NAT table of `sessions` on worker `me`'s port slice.
    pub fn gateway_worker(
        objects: &[Object],
        sessions: usize,
        me: usize,
        rings: Arc<[ArrayQueue<crate::graph::Handed<HeapBuf>>]>,
    ) -> HostPipeline {
        let mut h = Self::gateway(objects, sessions);
        if let Some(nat) = h.env.nat.as_mut() {
            nat.set_worker(me, rings.len());
        }
        h.graph.set_handoff(me, rings);
        h
    }

    /// Feeds frames in on `port` (through the trace watches if one looks at the port, as
    /// a worker does), runs the graph, returns what each port transmitted.
    pub fn run(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        let bufs = frames.iter().map(|f| HeapBuf::from_bytes(f));
        if self.graph.tracer().watches().rx_on(port) {
            self.graph
                .input_watched(port, bufs, &self.snap, self.now_ns);
        } else {
            self.graph.input(port, bufs);
        }
        self.graph.run(&self.snap, self.now_ns, &mut self.env);
        self.graph
            .tx_frames()
            .iter_mut()
            .map(|f| f.drain(..).map(|b| b.data().to_vec()).collect())
            .collect()
    }

    /// Starts trace watch 1 on this worker (a fresh tracer whose records go to the returned
    /// channel): packets received on `rx_ports`, and Geneve inner frames if `overlay`, that
    /// `filter` takes.
    pub fn watch(
        &mut self,
        rx_ports: u64,
        overlay: bool,
        filter: crate::capture::Program,
    ) -> Arc<crate::trace::TraceChannel> {
        use crate::trace::watch::{WatchCommand, WatchSpec};
        let ch = crate::trace::TraceChannel::new();
        let mut tracer = crate::trace::Tracer::new(0, ch.clone());
        tracer.watches_mut().apply(WatchCommand::Start {
            watch: 1,
            spec: Arc::new(WatchSpec {
                rx_ports,
                overlay,
                filter,
                rate: crate::trace::watch::MAX_RATE,
            }),
            counters: Default::default(),
        });
        self.graph.set_tracer(tracer);
        ch
    }

    /// A watch taking every packet, on every port and on Geneve inner frames (the fuzz
    /// target's watch mode).
    pub fn watch_all(&mut self) -> Arc<crate::trace::TraceChannel> {
        self.watch(u64::MAX, true, crate::capture::Program::accept_all())
    }

    /// Runs frames in on `port % 3` and checks every packet is accounted for: sent,
    /// dropped with a counted reason, consumed or held; an ICMP error sent counts as one
    /// more packet. Panics if a packet vanished (the fuzz target's invariant).
    pub fn run_accounted(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        let before = self.accounted();
        let held_before = self.graph.held() as u64;
        let out = self.run(port % 3, frames);
        let sent: u64 = out.iter().map(|p| p.len() as u64).sum();
        let after = self.accounted();
        let held = self.graph.held() as u64 - held_before;
        assert_eq!(
            frames.len() as u64 + (after.2 - before.2),
            sent + (after.0 - before.0) + (after.1 - before.1) + held,
            "a packet was lost without a counted reason"
        );
        out
    }

    /// (drops, consumed, icmp_sent) so far.
    fn accounted(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.env.stats;
        let drops = DropReason::ALL.iter().map(|r| self.drops(*r)).sum();
        (drops, s.consumed.load(Relaxed), s.icmp_sent.load(Relaxed))
    }

    /// Drops counted for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.env.stats.drops_for(r)
    }

    /// Every non-zero drop counter, for assertion messages.
    pub fn drop_summary(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.drops(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// An Ethernet + IPv4 frame from a VM.
pub fn vm_frame(src_mac: Mac, dst_mac: Mac, src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
    ipv4::emit_header(
        &mut f[14..],
        (20 + l4.len()) as u16,
        1,
        64,
        proto,
        ip(src),
        ip(dst),
    );
    f[34..].copy_from_slice(l4);
    f
}

/// An ICMP echo request body with identifier `id`.
pub fn echo(id: u16) -> Vec<u8> {
    let mut b = vec![8u8, 0, 0, 0];
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    b.extend_from_slice(b"aegis-overlay-test-payload");
    let c = checksum::checksum(&b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

/// Valid frames of every kind the overlay handles, as (port, frame) for host a: VM frames
/// (L2, L3, ARP, to the gateway) and Geneve packets from host b. Seeds for fuzzing.
pub fn seed_frames() -> Vec<(u16, Vec<u8>)> {
    let mut b = HostPipeline::new("b", 64);
    let from_b = vm_frame(B2_MAC, B1_MAC, "10.1.1.12", "10.1.1.11", 1, &echo(5));
    let geneve = b.run(1, &[from_b]).swap_remove(0);
    let mut v = vec![
        (
            1,
            vm_frame(B1_MAC, B2_MAC, "10.1.1.11", "10.1.1.12", 1, &echo(1)),
        ),
        (
            1,
            vm_frame(
                B1_MAC,
                crate::overlay::ROUTER_MAC,
                "10.1.1.11",
                "10.1.2.13",
                6,
                &tcp(1, 2, 2),
            ),
        ),
        (
            1,
            vm_frame(
                B1_MAC,
                crate::overlay::ROUTER_MAC,
                "10.1.1.11",
                "10.1.1.1",
                1,
                &echo(2),
            ),
        ),
        (
            1,
            crate::wire::arp::request_frame(
                B1_MAC,
                u32::from(Ipv4Addr::new(10, 1, 1, 11)),
                u32::from(Ipv4Addr::new(10, 1, 1, 1)),
            )
            .to_vec(),
        ),
    ];
    v.extend(geneve.into_iter().map(|f| (0, f)));
    v
}

/// Valid frames of every kind gateway host g handles, as (port, frame): Geneve from host a
/// for the gateway (source NAT, a floating IP, a hairpin, a TTL about to run out) on the
/// underlay, and replies and new connections from the external network. Seeds for fuzzing
/// [`HostPipeline::gateway`].
pub fn gateway_seed_frames() -> Vec<(u16, Vec<u8>)> {
    let objects = gateway_objects();
    let mut a = HostPipeline::with_objects("a", &objects, 64);
    let router = crate::overlay::ROUTER_MAC;
    let mut out = Vec::new();
    let mut ttl2 = vm_frame(B3_MAC, router, "10.1.2.13", "203.0.113.50", 1, &echo(4));
    ttl2[22] = 2;
    ipv4::Packet::new_unchecked(&mut ttl2[14..]).fill_checksum();
    let from_vms = [
        (
            2,
            vm_frame(
                B3_MAC,
                router,
                "10.1.2.13",
                "203.0.113.50",
                6,
                &tcp(40000, 80, 2),
            ),
        ),
        (
            1,
            vm_frame(B1_MAC, router, "10.1.1.11", "203.0.113.50", 1, &echo(9)),
        ),
        (
            2,
            vm_frame(
                B3_MAC,
                router,
                "10.1.2.13",
                "203.0.113.20",
                17,
                &tcp(5000, 53, 0)[..8],
            ),
        ),
        (2, ttl2),
    ];
    for (port, f) in from_vms {
        for frame in a.run(port, &[f]).swap_remove(0) {
            out.push((0, frame));
        }
    }
    let outside = |dst: &str, proto, l4: &[u8]| {
        vm_frame(EXT_HOST_MAC, EXT_MAC_G, "203.0.113.50", dst, proto, l4)
    };
    out.push((1, outside("203.0.113.20", 6, &tcp(5555, 22, 2))));
    out.push((1, outside("203.0.113.10", 6, &tcp(80, 1024, 0x12))));
    out.push((1, outside("203.0.113.20", 1, &echo(3))));
    out
}

/// A TCP header (20 bytes, checksum not filled: the dataplane does not check it).
pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t
}

/// An IPv4 address in host order.
pub fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().expect("an IPv4 address"))
}

/// Runs `frame` in on `in_port` of `h` and expects exactly one packet, out of `out_port`.
pub fn one_out(h: &mut HostPipeline, in_port: usize, frame: Vec<u8>, out_port: usize) -> Vec<u8> {
    let out = h.run(in_port as u16, &[frame]);
    let n: usize = out.iter().map(Vec::len).sum();
    assert_eq!(
        (n, out[out_port].len()),
        (1, 1),
        "expected one packet on port {out_port}; drops: {:?}",
        h.drop_summary()
    );
    out[out_port][0].clone()
}
