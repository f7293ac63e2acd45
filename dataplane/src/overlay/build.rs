//! Builds an [`Overlay`] for one host from the control plane's objects (Host, Vpc, Subnet,
//! Port, Route with a VPC, SecurityGroup). The control plane validated them already; a
//! value that still does not parse (a newer control plane, a corrupt cache) refuses the
//! whole revision with a message naming the object, and the previous overlay stays.
//!
//! A port whose host is this one must name a DPDK port of this dataplane (`device`); if
//! it does not, the revision is refused too (the operator must fix the object or host.toml).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use aegis_api::controlplane::v1::{object::Spec, Direction as PbDirection, Object, RouteAction};

use super::gateway::{self, VpcModel};
use super::secgroup::{self, CounterSlots, Direction, GroupSpec, RemoteSpec, RuleSpec};
use super::{Endpoint, Location, Overlay, Subnet, Vpc, VpcRoute, VpcTarget, NO_ENDPOINT};
use crate::fib::Prefix;
use crate::state::Mac;

/// Bytes the Geneve encapsulation adds in front of the inner IPv4 packet: inner Ethernet
/// (14), Geneve (8), UDP (8), outer IPv4 (20).
pub const OVERLAY_OVERHEAD: u16 = 50;

/// What the builder needs to know about this dataplane's ports.
pub trait PortLookup {
    /// Index and IP MTU of the DPDK port called `name`.
    fn port(&self, name: &str) -> Option<(u16, u16)>;
    /// Number of DPDK ports.
    fn count(&self) -> usize;
    /// The port that holds address `ip`, and its MTU.
    fn port_with_address(&self, ip: Ipv4Addr) -> Option<(u16, u16)>;
    /// host.toml's `[nat] outside_port` (a gateway's external port), if set.
    fn nat_outside_port(&self) -> Option<u16> {
        None
    }
}

/// Builds the overlay of `host` at `revision` from `objects`. Denial counter slots come
/// from `slots` (kept by the caller across builds so counters keep their names).
pub fn build<'a>(
    host: &str,
    revision: u64,
    objects: impl IntoIterator<Item = &'a Object>,
    ports: &dyn PortLookup,
    slots: &mut CounterSlots,
) -> Result<Overlay, String> {
    let mut hosts: BTreeMap<&str, u32> = BTreeMap::new();
    let mut vpc_objs = Vec::new();
    let mut subnet_objs = Vec::new();
    let mut port_objs = Vec::new();
    let mut route_objs = Vec::new();
    let mut group_objs = Vec::new();
    let objects: Vec<&Object> = objects.into_iter().collect();
    for &o in &objects {
        match &o.spec {
            Some(Spec::Host(h)) if !h.underlay_address.is_empty() => {
                let ip: Ipv4Addr = h.underlay_address.parse().map_err(|_| {
                    format!(
                        "host {}: underlay address {:?} is not IPv4",
                        o.name, h.underlay_address
                    )
                })?;
                hosts.insert(&o.name, u32::from(ip));
            }
            Some(Spec::Vpc(v)) => vpc_objs.push((o.name.as_str(), v)),
            Some(Spec::Subnet(s)) => subnet_objs.push((o.name.as_str(), s)),
            Some(Spec::Port(p)) => port_objs.push((o.name.as_str(), p)),
            Some(Spec::Route(r)) if !r.vpc.is_empty() => route_objs.push((o.name.as_str(), r)),
            Some(Spec::SecurityGroup(g)) => group_objs.push((o.name.as_str(), g)),
            _ => {}
        }
    }

    let underlay_ip = hosts.get(host).copied().unwrap_or(0);
    let mtu = if underlay_ip == 0 {
        0
    } else {
        let (_, port_mtu) = ports
            .port_with_address(Ipv4Addr::from(underlay_ip))
            .ok_or_else(|| {
                format!(
                    "host {host}: underlay address {} is on no dataplane port (give it in the \
                     host's addresses)",
                    Ipv4Addr::from(underlay_ip)
                )
            })?;
        port_mtu.saturating_sub(OVERLAY_OVERHEAD)
    };

    // VPCs and subnets.
    let mut vpc_index: BTreeMap<&str, u16> = BTreeMap::new();
    let mut vpcs: Vec<(String, u32, Vec<Subnet>, Vec<VpcRoute>)> = Vec::new();
    for (name, v) in &vpc_objs {
        vpc_index.insert(name, vpcs.len() as u16);
        vpcs.push((name.to_string(), v.vni, Vec::new(), Vec::new()));
    }
    let mut subnet_index: BTreeMap<&str, (u16, u16)> = BTreeMap::new();
    for (name, s) in &subnet_objs {
        let &vpc = vpc_index
            .get(s.vpc.as_str())
            .ok_or_else(|| format!("subnet {name}: no VPC {:?}", s.vpc))?;
        let prefix: Prefix = s
            .cidr
            .parse()
            .map_err(|e| format!("subnet {name}: cidr {:?}: {e}", s.cidr))?;
        let gateway: Ipv4Addr = s
            .gateway_ip
            .parse()
            .map_err(|_| format!("subnet {name}: gateway {:?} is not IPv4", s.gateway_ip))?;
        let list = &mut vpcs[usize::from(vpc)].2;
        subnet_index.insert(name, (vpc, list.len() as u16));
        list.push(Subnet {
            name: name.to_string(),
            prefix,
            gateway: u32::from(gateway),
        });
    }

    // Ports.
    let mut endpoints = Vec::new();
    let mut local = vec![NO_ENDPOINT; ports.count()];
    let mut by_ip = rustc_hash::FxHashMap::default();
    let mut by_mac = rustc_hash::FxHashMap::default();
    let mut port_groups: Vec<Vec<&str>> = Vec::new();
    let mut group_members: BTreeMap<(&str, u16), Vec<u32>> = BTreeMap::new();
    for (name, p) in &port_objs {
        let &(vpc, subnet) = subnet_index
            .get(p.subnet.as_str())
            .ok_or_else(|| format!("port {name}: no subnet {:?}", p.subnet))?;
        let mac = parse_mac(&p.mac).ok_or_else(|| format!("port {name}: bad MAC {:?}", p.mac))?;
        let mut ips = Vec::with_capacity(p.ips.len());
        for ip in &p.ips {
            let a: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("port {name}: address {ip:?} is not IPv4"))?;
            ips.push(u32::from(a));
        }
        let index = endpoints.len() as u32;
        let at = if p.host == host {
            let (dev, _) = ports.port(&p.device).ok_or_else(|| {
                format!(
                    "port {name}: device {:?} is not a port of this dataplane (host.toml)",
                    p.device
                )
            })?;
            if local[usize::from(dev)] != NO_ENDPOINT {
                return Err(format!(
                    "port {name}: device {:?} is already bound to port {}",
                    p.device,
                    endpoints
                        .get(local[usize::from(dev)] as usize)
                        .map(|e: &Endpoint| e.name.as_str())
                        .unwrap_or("?")
                ));
            }
            local[usize::from(dev)] = index;
            Location::Local(dev)
        } else {
            match hosts.get(p.host.as_str()) {
                Some(&ip) if underlay_ip != 0 => Location::Remote(ip),
                _ => Location::Unplaced,
            }
        };
        for &ip in &ips {
            by_ip.insert((vpc, ip), index);
        }
        by_mac.insert(mac, index);
        for g in &p.security_groups {
            group_members
                .entry((g.as_str(), vpc))
                .or_default()
                .extend(ips.iter().copied());
        }
        port_groups.push(p.security_groups.iter().map(String::as_str).collect());
        endpoints.push(Endpoint {
            name: name.to_string(),
            vpc,
            subnet,
            mac,
            ips: ips.into_boxed_slice(),
            at,
            rules: 0,
        });
    }

    // VPC routes (after ports: next hops resolve to endpoints).
    for (name, r) in &route_objs {
        let &vpc = vpc_index
            .get(r.vpc.as_str())
            .ok_or_else(|| format!("route {name}: no VPC {:?}", r.vpc))?;
        let prefix: Prefix = r
            .prefix
            .parse()
            .map_err(|e| format!("route {name}: prefix {:?}: {e}", r.prefix))?;
        let target = match RouteAction::try_from(r.action) {
            Ok(RouteAction::Unspecified | RouteAction::Forward) => {
                let nh: Ipv4Addr = r
                    .next_hop
                    .parse()
                    .map_err(|_| format!("route {name}: next hop {:?} is not IPv4", r.next_hop))?;
                match by_ip.get(&(vpc, u32::from(nh))) {
                    Some(&e) => VpcTarget::Endpoint(e),
                    None => VpcTarget::NextHopUnknown,
                }
            }
            Ok(RouteAction::Blackhole) => VpcTarget::Blackhole,
            Ok(RouteAction::Unreachable) => VpcTarget::Unreachable,
            Err(_) => return Err(format!("route {name}: unknown action {}", r.action)),
        };
        vpcs[usize::from(vpc)].3.push(VpcRoute { prefix, target });
    }

    // North-south: the gateway group of each VPC, and this host's role in one.
    let model = Model {
        vpcs: &vpc_objs,
        subnets: &subnet_objs,
        ports: &port_objs,
    };
    let underlay_port = ports
        .port_with_address(Ipv4Addr::from(underlay_ip))
        .map(|(p, _)| p);
    let gateways = gateway::parse(
        host,
        objects.iter().copied(),
        &model,
        (ports.nat_outside_port(), underlay_port),
    )?;
    for (vpc_name, (group, tunnel)) in &gateways.by_vpc {
        let Some(&vpc) = vpc_index.get(vpc_name.as_str()) else {
            return Err(format!("gateway group {group}: no vpc {vpc_name:?}"));
        };
        let index = endpoints.len() as u32;
        endpoints.push(Endpoint {
            name: format!("gateway-group/{group}"),
            vpc,
            subnet: 0,
            mac: gateway::GATEWAY_MAC,
            ips: Box::new([]),
            at: if *tunnel == 0 || underlay_ip == 0 {
                Location::Unplaced
            } else {
                Location::Remote(*tunnel)
            },
            rules: 0,
        });
        port_groups.push(Vec::new());
        let routes = &mut vpcs[usize::from(vpc)].3;
        if !routes.iter().any(|r| r.prefix.length() == 0) {
            routes.push(VpcRoute {
                prefix: Prefix::DEFAULT,
                target: VpcTarget::Endpoint(index),
            });
        }
    }

    // Security groups of the local ports.
    let mut groups: BTreeMap<&str, GroupSpec> = BTreeMap::new();
    for (name, g) in &group_objs {
        groups.insert(name, group_spec(name, g)?);
    }
    let mut rule_sets = Vec::new();
    for (i, e) in endpoints.iter_mut().enumerate() {
        if !matches!(e.at, Location::Local(_)) {
            continue;
        }
        let mut specs = Vec::new();
        for g in &port_groups[i] {
            specs.push(
                groups
                    .get(g)
                    .ok_or_else(|| format!("port {}: no security group {g:?}", e.name))?,
            );
        }
        let vpc = e.vpc;
        let members = |group: &str| -> Vec<u32> {
            group_members
                .get(&(group, vpc))
                .cloned()
                .unwrap_or_default()
        };
        e.rules = rule_sets.len() as u32;
        rule_sets.push(secgroup::compile(&specs, &members, slots));
    }

    let by_vni = vpcs
        .iter()
        .enumerate()
        .map(|(i, v)| (v.1, i as u16))
        .collect();
    let tunnel_ip = gateways
        .role
        .as_ref()
        .and_then(|r| r.tunnel)
        .map_or(0, u32::from);
    Ok(Overlay {
        revision,
        underlay_ip,
        tunnel_ip,
        gateway: gateways.role,
        mtu,
        vpcs: vpcs
            .into_iter()
            .map(|(name, vni, subnets, routes)| Vpc {
                name,
                vni,
                subnets: subnets.into_boxed_slice(),
                routes: routes.into_boxed_slice(),
            })
            .collect(),
        by_vni,
        endpoints: endpoints.into_boxed_slice(),
        by_ip,
        by_mac,
        local: local.into_boxed_slice(),
        epochs: rule_sets.iter().map(fingerprint).collect(),
        rule_sets: rule_sets.into_boxed_slice(),
        counters: Arc::new(slots.clone()),
    })
}

/// The VPC, subnet and port objects as [`gateway::parse`] asks about them.
struct Model<'a, 'b> {
    vpcs: &'b [(&'a str, &'a aegis_api::controlplane::v1::Vpc)],
    subnets: &'b [(&'a str, &'a aegis_api::controlplane::v1::Subnet)],
    ports: &'b [(&'a str, &'a aegis_api::controlplane::v1::Port)],
}

impl VpcModel for Model<'_, '_> {
    fn vni(&self, vpc: &str) -> Option<u32> {
        self.vpcs
            .iter()
            .find(|(n, _)| *n == vpc)
            .map(|(_, v)| v.vni)
    }

    fn subnets(&self, vpc: &str) -> Vec<Prefix> {
        self.subnets
            .iter()
            .filter(|(_, s)| s.vpc == vpc)
            .filter_map(|(_, s)| s.cidr.parse().ok())
            .collect()
    }

    fn subnet(&self, subnet: &str) -> Option<Prefix> {
        self.subnets
            .iter()
            .find(|(n, _)| *n == subnet)
            .and_then(|(_, s)| s.cidr.parse().ok())
    }

    fn port(&self, port: &str) -> Option<(String, u32, Vec<Ipv4Addr>)> {
        let (_, p) = self.ports.iter().find(|(n, _)| *n == port)?;
        let ips = p.ips.iter().filter_map(|a| a.parse().ok()).collect();
        let vpc = self
            .subnets
            .iter()
            .find(|(n, _)| *n == p.subnet)
            .map_or(p.vpc.as_str(), |(_, s)| s.vpc.as_str());
        Some((vpc.to_string(), self.vni(vpc)?, ips))
    }
}

/// A security group object as the policy compiler takes it.
fn group_spec(
    name: &str,
    g: &aegis_api::controlplane::v1::SecurityGroup,
) -> Result<GroupSpec, String> {
    let mut rules = Vec::with_capacity(g.rules.len());
    for r in &g.rules {
        let bad = |what: String| format!("security group {name}: rule {:?}: {what}", r.id);
        let direction = match PbDirection::try_from(r.direction) {
            Ok(PbDirection::Ingress) => Direction::Ingress,
            Ok(PbDirection::Egress) => Direction::Egress,
            _ => return Err(bad(format!("direction {}", r.direction))),
        };
        let protocol = match r.protocol.as_str() {
            "" | "any" => None,
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            n => Some(
                n.parse::<u8>()
                    .map_err(|_| bad(format!("protocol {n:?}")))?,
            ),
        };
        let port = |v: u32| u16::try_from(v).map_err(|_| bad(format!("port {v} above 65535")));
        let remote = if !r.remote_group.is_empty() {
            RemoteSpec::Group(r.remote_group.clone())
        } else if !r.remote_cidr.is_empty() {
            let p: Prefix = r
                .remote_cidr
                .parse()
                .map_err(|e| bad(format!("remote {:?}: {e}", r.remote_cidr)))?;
            RemoteSpec::Cidr {
                addr: p.bits(),
                len: p.length(),
            }
        } else {
            RemoteSpec::Any
        };
        rules.push(RuleSpec {
            id: r.id.clone(),
            direction,
            protocol,
            port_min: port(r.port_min)?,
            port_max: port(r.port_max)?,
            remote,
            priority: r.priority,
            allow: r.action != aegis_api::controlplane::v1::RuleAction::Deny as i32,
        });
    }
    Ok(GroupSpec {
        name: name.to_string(),
        rules,
    })
}

/// A 32-bit fingerprint of a compiled rule set (never 0, so a fresh entry's tag differs).
fn fingerprint(set: &secgroup::RuleSet) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    format!("{set:?}").hash(&mut h);
    (h.finish() as u32).max(1)
}

fn parse_mac(s: &str) -> Option<Mac> {
    crate::wire::ethernet::parse_mac(s)
}
