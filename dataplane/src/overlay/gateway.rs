//! North-south in the overlay, built from the control plane's ExternalNetwork,
//! GatewayGroup, SnatRule and FloatingIp objects:
//!
//! - on every host, which gateway group serves each VPC: a VPC with a source NAT rule, or a
//!   port with a floating IP, gets a default route (0.0.0.0/0, unless the VPC has its own)
//!   to a *gateway endpoint* whose underlay address is the group's tunnel address. That
//!   address is a VRRP address of the group's gateways on the underlay, so the compute
//!   hosts' path follows the VRRP master as fast as VRRP moves (gratuitous ARP), with no
//!   control-plane round trip;
//! - on a gateway host (a member of a group), its [`GatewayRole`]: the NAT rules and
//!   floating IPs of the VPCs the group serves, the external addresses the VRRP master
//!   answers for, and the tunnel address.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aegis_api::controlplane::v1::{object::Spec, Object};

use crate::fib::Prefix;
use crate::nat::{FloatingIp, NatConfig, SnatRule};
use crate::state::Mac;

/// The inner destination MAC of packets a compute host sends to a gateway group (the
/// gateway endpoint's MAC). A gateway decapsulates frames to it into `gateway-output`.
pub const GATEWAY_MAC: Mac = [0x02, 0xae, 0x00, 0x00, 0x00, 0x02];

/// What a gateway host does for its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayRole {
    /// The group's name.
    pub group: String,
    /// Source NAT rules and floating IPs, per VPC (VNI). `outside_port` is the host's
    /// (host.toml `[nat] outside_port`).
    pub nat: NatConfig,
    /// The addresses the group's VRRP master answers for on the external port: the
    /// group's external addresses and the floating IPs, with the external network's prefix
    /// length.
    pub external_addresses: Vec<(Ipv4Addr, u8)>,
    /// The DPDK port holding the external network (host.toml `[nat] outside_port`).
    pub external_port: u16,
    /// The group's tunnel address on the underlay (a VRRP address), if it has one.
    pub tunnel: Option<Ipv4Addr>,
    /// The DPDK port holding this host's underlay address.
    pub underlay_port: u16,
    /// The session-sync peers the control plane chose, once it has chosen
    /// (GatewayGroup `sync_assignment`); `None`: host.toml `[sync] peers` apply.
    pub sync: Option<SyncPeers>,
    /// The VRRP this host runs for the group (the speaker builds its instances from it,
    /// unless host.toml's keepalived.conf already runs the group's VRID).
    pub vrrp: GroupVrrp,
}

/// Name of the VRRP instance a gateway builds on its external port for its group (the
/// one session sync follows when `[sync] vrrp_instance` is not given).
pub const EXTERNAL_INSTANCE: &str = "gw-external";
/// Name of the VRRP instance a gateway builds on its underlay port (the tunnel address).
pub const TUNNEL_INSTANCE: &str = "gw-tunnel";

/// One member's VRRP for its gateway group, from the GatewayGroup object, the member's
/// entry and the other members' Host objects: an instance on the underlay port holding the
/// tunnel address and one on the external port holding the external addresses, in one
/// sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVrrp {
    /// Virtual router id of both instances.
    pub vrid: u32,
    /// 2 or 3.
    pub version: u8,
    /// Advertisement interval, milliseconds.
    pub interval_ms: u32,
    /// This member's priority.
    pub priority: u32,
    /// Take over from a lower-priority master.
    pub preempt: bool,
    /// After start-up, accept a lower-priority master this long.
    pub preempt_delay_ms: u32,
    /// This host's underlay address (the underlay instance's own address).
    pub underlay_address: Option<Ipv4Addr>,
    /// The external network's prefix (the external instance's own address is the external
    /// port's address inside it).
    pub external_network: Option<Prefix>,
    /// Unicast peers on the underlay (the other members' underlay addresses); empty: the
    /// 224.0.0.18 group.
    pub underlay_peers: Vec<Ipv4Addr>,
    /// Unicast peers on the external network (the other members' Host addresses inside
    /// it); empty: the 224.0.0.18 group.
    pub external_peers: Vec<Ipv4Addr>,
    /// What does not run as declared, in words (`show vrrp`, `gateway status`).
    pub problems: Vec<String>,
}

/// The group's session-sync peers from the control plane's assignment. A member's sync
/// address is its Host object's underlay address (`[sync] port` is the underlay port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPeers {
    /// Every other member with an underlay address: whose datagrams are accepted (any of
    /// them may be the VRRP master).
    pub members: Vec<Ipv4Addr>,
    /// Who this host streams to while it is master: the assigned members other than
    /// itself (all of them when it is not assigned).
    pub stream_to: Vec<Ipv4Addr>,
    /// This host is not among the assigned members: a spare, streamed to by nobody.
    pub spare: bool,
    /// The assignment's generation.
    pub generation: u64,
}

/// The gateway objects of one revision, parsed.
#[derive(Debug, Default)]
pub struct Gateways {
    /// VPC name → (group name, the group's tunnel address host order, 0 if none).
    pub by_vpc: BTreeMap<String, (String, u32)>,
    /// This host's role, if it is a member of a group.
    pub role: Option<GatewayRole>,
}

/// Parses the gateway objects among `objects` for `host`. `model` answers for VPCs,
/// subnets and ports; `ports` are the host's external port (host.toml `[nat]
/// outside_port`) and underlay port, needed when it is a member of a group.
pub fn parse<'a>(
    host: &str,
    objects: impl IntoIterator<Item = &'a Object>,
    model: &dyn VpcModel,
    ports: (Option<u16>, Option<u16>),
) -> Result<Gateways, String> {
    let mut networks: BTreeMap<&str, Prefix> = BTreeMap::new();
    let mut groups = Vec::new();
    let mut underlays: BTreeMap<&str, &str> = BTreeMap::new();
    let mut host_addresses: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut snats = Vec::new();
    let mut fips = Vec::new();
    for o in objects {
        match &o.spec {
            Some(Spec::ExternalNetwork(n)) => {
                let p: Prefix = n
                    .cidr
                    .parse()
                    .map_err(|e| format!("external-network {}: cidr {:?}: {e}", o.name, n.cidr))?;
                networks.insert(&o.name, p);
            }
            Some(Spec::GatewayGroup(g)) => groups.push((o.name.as_str(), g)),
            Some(Spec::Host(h)) => {
                if !h.underlay_address.is_empty() {
                    underlays.insert(o.name.as_str(), h.underlay_address.as_str());
                }
                host_addresses.insert(
                    o.name.as_str(),
                    h.addresses.iter().map(|a| a.address.as_str()).collect(),
                );
            }
            Some(Spec::SnatRule(s)) => snats.push((o.name.as_str(), s)),
            Some(Spec::FloatingIp(f)) => fips.push((o.name.as_str(), f)),
            _ => {}
        }
    }
    let addr = |what: &str, name: &str, s: &str| -> Result<Ipv4Addr, String> {
        s.parse()
            .map_err(|_| format!("{what} {name}: address {s:?} is not IPv4"))
    };
    let mut tunnels: BTreeMap<&str, u32> = BTreeMap::new();
    for (name, g) in &groups {
        let t = if g.tunnel_address.is_empty() {
            0
        } else {
            u32::from(addr("gateway-group", name, &g.tunnel_address)?)
        };
        tunnels.insert(name, t);
    }
    let group_of_network = |net: &str| {
        groups
            .iter()
            .find(|(_, g)| g.external_network == net)
            .map(|(n, _)| *n)
    };

    let mut out = Gateways::default();
    let mut serve = |vpc: &str, group: &str| -> Result<(), String> {
        let tunnel = tunnels.get(group).copied().unwrap_or(0);
        match out.by_vpc.get(vpc) {
            Some((g, _)) if g != group => Err(format!(
                "vpc {vpc}: served by two gateway groups ({g} and {group}); one VPC leaves \
                 through one group"
            )),
            _ => {
                out.by_vpc
                    .insert(vpc.to_string(), (group.to_string(), tunnel));
                Ok(())
            }
        }
    };
    for (name, s) in &snats {
        if !tunnels.contains_key(s.gateway_group.as_str()) {
            return Err(format!(
                "snat-rule {name}: no gateway group {:?}",
                s.gateway_group
            ));
        }
        serve(&s.vpc, &s.gateway_group)?;
    }
    for (name, f) in &fips {
        let (vpc, _, _) = model
            .port(&f.port)
            .ok_or_else(|| format!("floating-ip {name}: no port {:?}", f.port))?;
        if let Some(g) = group_of_network(&f.external_network) {
            serve(&vpc, g)?;
        }
    }

    let member: Vec<_> = groups
        .iter()
        .filter(|(_, g)| g.members.iter().any(|m| m.host == host))
        .collect();
    let Some((gname, g)) = member.first() else {
        return Ok(out);
    };
    if let Some((other, _)) = member.get(1) {
        return Err(format!(
            "host {host}: a member of gateway groups {gname} and {other}; a gateway host \
             serves one group"
        ));
    }
    let (external_port, underlay_port) = match ports {
        (Some(e), Some(u)) => (e, u),
        (None, _) => {
            return Err(format!(
                "host {host}: a member of gateway group {gname}, but its host.toml has no \
                 [nat] outside_port (the port on external network {})",
                g.external_network
            ))
        }
        (_, None) => {
            return Err(format!(
                "host {host}: a member of gateway group {gname}, but it has no underlay \
                 address on a dataplane port"
            ))
        }
    };
    let net = networks.get(g.external_network.as_str()).ok_or_else(|| {
        format!(
            "gateway-group {gname}: no external network {:?}",
            g.external_network
        )
    })?;
    let mut role = GatewayRole {
        group: gname.to_string(),
        external_port,
        underlay_port,
        tunnel: (tunnels[gname] != 0).then(|| Ipv4Addr::from(tunnels[gname])),
        ..GatewayRole::default()
    };
    role.vrrp = group_vrrp(host, g, *net, &underlays, &host_addresses)?;
    if let Some(a) = &g.sync_assignment {
        let underlay = |h: &str| -> Result<Option<Ipv4Addr>, String> {
            underlays.get(h).map(|u| addr("host", h, u)).transpose()
        };
        let mut peers = SyncPeers {
            generation: a.generation,
            spare: !a.members.iter().any(|m| m == host),
            ..SyncPeers::default()
        };
        for m in g.members.iter().filter(|m| m.host != host) {
            if let Some(u) = underlay(&m.host)? {
                peers.members.push(u);
            }
        }
        for m in a.members.iter().filter(|m| *m != host) {
            if let Some(u) = underlay(m)? {
                peers.stream_to.push(u);
            }
        }
        role.sync = Some(peers);
    }
    for a in &g.external_addresses {
        role.external_addresses
            .push((addr("gateway-group", gname, a)?, net.length()));
    }
    let (mut snat, mut vpc_wide) = (Vec::new(), Vec::new());
    for (name, s) in snats.iter().filter(|(_, s)| s.gateway_group == *gname) {
        let address = addr("snat-rule", name, &s.external_address)?;
        let vni = model
            .vni(&s.vpc)
            .ok_or_else(|| format!("snat-rule {name}: no vpc {:?}", s.vpc))?;
        let sources = if s.subnet.is_empty() {
            model.subnets(&s.vpc)
        } else {
            vec![model
                .subnet(&s.subnet)
                .ok_or_else(|| format!("snat-rule {name}: no subnet {:?}", s.subnet))?]
        };
        // A VPC-wide rule covers each of the VPC's subnets as a subnet's own rule would;
        // the subnet's own rule goes first, so it wins (the first given among equally
        // specific rules applies, see NatConfig::new).
        let rules = if s.subnet.is_empty() {
            &mut vpc_wide
        } else {
            &mut snat
        };
        rules.extend(sources.into_iter().map(|source| SnatRule {
            vpc: vni,
            source,
            address,
            endpoint_dependent: true,
        }));
    }
    snat.append(&mut vpc_wide);
    let mut floating_ips = Vec::new();
    for (name, f) in fips
        .iter()
        .filter(|(_, f)| group_of_network(&f.external_network) == Some(*gname))
    {
        let outside = addr("floating-ip", name, &f.address)?;
        let (_, vni, ips) = model
            .port(&f.port)
            .ok_or_else(|| format!("floating-ip {name}: no port {:?}", f.port))?;
        let inside = if f.fixed_ip.is_empty() {
            *ips.first()
                .ok_or_else(|| format!("floating-ip {name}: port {} has no address", f.port))?
        } else {
            addr("floating-ip", name, &f.fixed_ip)?
        };
        floating_ips.push(FloatingIp {
            vpc: vni,
            inside,
            outside,
        });
        role.external_addresses.push((outside, net.length()));
    }
    role.nat = NatConfig::new(Some(external_port), snat, floating_ips);
    out.role = Some(role);
    Ok(out)
}

/// `host`'s VRRP for group `g` on external network `net`: the GatewayGroup's settings,
/// the member's priority, and the unicast peers of each link — with the default (auto)
/// transport, the other members' addresses on that link when every one of them has one
/// (else the multicast group there), with unicast always those (a member without one is
/// left out and named in `problems`), with multicast none (no peers: 224.0.0.18).
fn group_vrrp(
    host: &str,
    g: &aegis_api::controlplane::v1::GatewayGroup,
    net: Prefix,
    underlays: &BTreeMap<&str, &str>,
    host_addresses: &BTreeMap<&str, Vec<&str>>,
) -> Result<GroupVrrp, String> {
    use aegis_api::controlplane::v1::VrrpTransport;
    let transport = VrrpTransport::try_from(g.vrrp_transport).unwrap_or(VrrpTransport::Unspecified);
    let mut v = GroupVrrp {
        vrid: g.vrid,
        version: if g.vrrp_version == 2 { 2 } else { 3 },
        interval_ms: if g.advert_interval_ms == 0 {
            1000
        } else {
            g.advert_interval_ms
        },
        priority: g
            .members
            .iter()
            .find(|m| m.host == host)
            .map_or(0, |m| m.priority),
        preempt: !g.no_preempt,
        preempt_delay_ms: g.preempt_delay_ms,
        underlay_address: underlays.get(host).and_then(|a| a.parse().ok()),
        external_network: Some(net),
        ..GroupVrrp::default()
    };
    if transport == VrrpTransport::Multicast {
        return Ok(v);
    }
    let strict = transport == VrrpTransport::Unicast;
    let others: Vec<&str> = g
        .members
        .iter()
        .map(|m| m.host.as_str())
        .filter(|h| *h != host)
        .collect();
    let mut underlay = Vec::new();
    let mut external = Vec::new();
    let mut missing_underlay = Vec::new();
    let mut missing_external = Vec::new();
    for h in &others {
        match underlays.get(h) {
            Some(a) => underlay.push(
                a.parse::<Ipv4Addr>()
                    .map_err(|_| format!("host {h}: underlay address {a:?} is not IPv4"))?,
            ),
            None => missing_underlay.push(*h),
        }
        let on_net = host_addresses
            .get(h)
            .into_iter()
            .flatten()
            .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
            .find(|a| net.contains(*a));
        match on_net {
            Some(a) => external.push(a),
            None => missing_external.push(*h),
        }
    }
    let mut problems = Vec::new();
    let mut link = |peers: Vec<Ipv4Addr>, missing: Vec<&str>, what: &str| {
        if missing.is_empty() {
            peers
        } else if strict {
            problems.push(format!(
                "unicast VRRP: member {} has no address {what}: left out of the peers",
                missing.join(", ")
            ));
            peers
        } else {
            // Auto: the multicast group on a link where an address is unknown.
            Vec::new()
        }
    };
    v.underlay_peers = link(
        underlay,
        missing_underlay,
        "on the underlay (Host underlay_address)",
    );
    v.external_peers = link(
        external,
        missing_external,
        &format!(
            "on external network {} ({net}) among its Host addresses",
            g.external_network
        ),
    );
    v.problems = problems;
    Ok(v)
}

/// What [`parse`] needs to know about VPCs, subnets and ports (from the builder).
pub trait VpcModel {
    /// A VPC's VNI.
    fn vni(&self, vpc: &str) -> Option<u32>;
    /// The prefixes of a VPC's subnets.
    fn subnets(&self, vpc: &str) -> Vec<Prefix>;
    /// One subnet's prefix.
    fn subnet(&self, subnet: &str) -> Option<Prefix>;
    /// A port's VPC name, VNI and addresses.
    fn port(&self, port: &str) -> Option<(String, u32, Vec<Ipv4Addr>)>;
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::{
        GatewayMember, Host, HostAddress, SyncAssignment, VrrpTransport,
    };

    use super::*;
    use crate::testkit::overlay::{gateway_objects, gateway_snapshot};

    /// The test kit's group with g2 and g3 added (underlay .14 and .15) and `chosen` as
    /// the control plane's sync assignment.
    fn objects(chosen: Option<&[&str]>) -> Vec<Object> {
        let mut v = gateway_objects();
        for (name, ip) in [("g2", "10.88.0.14"), ("g3", "10.88.0.15")] {
            v.push(Object {
                name: name.into(),
                spec: Some(Spec::Host(Host {
                    role: 2,
                    underlay_address: ip.into(),
                    ..Host::default()
                })),
                ..Object::default()
            });
        }
        for o in &mut v {
            if let Some(Spec::GatewayGroup(g)) = &mut o.spec {
                for (host, priority) in [("g2", 150), ("g3", 100)] {
                    g.members.push(GatewayMember {
                        host: host.into(),
                        priority,
                    });
                }
                g.sync_assignment = chosen.map(|c| SyncAssignment {
                    members: c.iter().map(|h| h.to_string()).collect(),
                    generation: 3,
                    reason: String::new(),
                });
            }
        }
        v
    }

    fn sync_of(chosen: Option<&[&str]>) -> Option<SyncPeers> {
        let snap = gateway_snapshot(&objects(chosen));
        snap.overlay
            .gateway
            .as_ref()
            .expect("g is a gateway")
            .sync
            .clone()
    }

    #[test]
    fn the_assignment_becomes_the_sync_peers_by_underlay_address() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(sync_of(None), None, "no choice yet: host.toml's peers");
        assert_eq!(
            sync_of(Some(&["g", "g2"])),
            Some(SyncPeers {
                members: vec![ip("10.88.0.14"), ip("10.88.0.15")],
                stream_to: vec![ip("10.88.0.14")],
                spare: false,
                generation: 3,
            })
        );
        // g2 died, g3 chosen: the next revision streams to g3 instead.
        let p = sync_of(Some(&["g", "g3"])).unwrap();
        assert_eq!(p.stream_to, [ip("10.88.0.15")]);
        // g not chosen: a spare, which would stream to both chosen ones as master.
        let p = sync_of(Some(&["g2", "g3"])).unwrap();
        assert!(p.spare);
        assert_eq!(p.stream_to, [ip("10.88.0.14"), ip("10.88.0.15")]);
    }

    #[test]
    fn the_group_gives_each_member_its_vrrp_with_the_other_members_as_peers() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let with = |transport: VrrpTransport| {
            let mut v = objects(Some(&["g", "g2"]));
            for o in &mut v {
                match &mut o.spec {
                    // g2 has an address on the external network, g3 has none.
                    Some(Spec::Host(h)) if o.name == "g2" => h.addresses.push(HostAddress {
                        port: "ext0".into(),
                        address: "203.0.113.3/24".into(),
                    }),
                    Some(Spec::GatewayGroup(g)) => {
                        g.advert_interval_ms = 100;
                        g.preempt_delay_ms = 2_000;
                        g.vrrp_transport = transport as i32;
                    }
                    _ => {}
                }
            }
            let snap = gateway_snapshot(&v);
            snap.overlay
                .gateway
                .as_ref()
                .expect("g is a gateway")
                .vrrp
                .clone()
        };
        let v = with(VrrpTransport::Unspecified);
        assert_eq!(
            (
                v.vrid,
                v.version,
                v.interval_ms,
                v.priority,
                v.preempt,
                v.preempt_delay_ms
            ),
            (10, 3, 100, 200, true, 2_000)
        );
        assert_eq!(v.underlay_address, Some(ip("10.88.0.13")));
        assert_eq!(v.external_network, Some("203.0.113.0/24".parse().unwrap()));
        assert_eq!(v.underlay_peers, [ip("10.88.0.14"), ip("10.88.0.15")]);
        // Auto: g3's address on the external network is unknown, so multicast there.
        assert!(v.external_peers.is_empty());
        assert!(v.problems.is_empty());
        // Unicast: g3 is left out of the external peers, and that is a problem.
        let v = with(VrrpTransport::Unicast);
        assert_eq!(v.external_peers, [ip("203.0.113.3")]);
        assert_eq!(
            v.problems,
            [
                "unicast VRRP: member g3 has no address on external network ext \
              (203.0.113.0/24) among its Host addresses: left out of the peers"
            ]
        );
        // Multicast: no peers anywhere.
        let v = with(VrrpTransport::Multicast);
        assert!(v.underlay_peers.is_empty() && v.external_peers.is_empty());
        // Defaults: 1 s, VRRPv3, preempt.
        let snap = gateway_snapshot(&gateway_objects());
        let v = &snap.overlay.gateway.as_ref().unwrap().vrrp;
        assert_eq!((v.interval_ms, v.version, v.preempt), (1_000, 3, true));
    }
}
