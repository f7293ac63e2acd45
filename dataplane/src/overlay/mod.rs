//! The overlay as workers read it: every VPC's distributed router on this host — VPCs by
//! VNI, their subnets (gateway addresses) and static routes, every port of every VPC
//! (where it lives: a local DPDK port or another host's underlay address) and the compiled
//! security groups of the local ports. [`build`] makes one from the control plane's
//! objects; it travels inside the [`crate::state::Snapshot`] and is swapped whole.
//!
//! Lookups are hash maps keyed by (VPC, address) and by MAC, plus a short scan of a VPC's
//! subnets and routes (a VPC has few of those; ports are the many).

pub mod build;
pub mod gateway;
pub mod secgroup;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::fib::Prefix;
use crate::state::Mac;
use secgroup::{CounterSlots, RuleSet};

/// The distributed router's MAC: the same on every host and subnet (an anycast gateway
/// MAC, as EVPN fabrics use), so a VM keeps its ARP entry when it moves.
pub const ROUTER_MAC: Mac = [0x02, 0xae, 0x00, 0x00, 0x00, 0x01];

/// Marks "no endpoint" in [`Overlay::local`].
pub const NO_ENDPOINT: u32 = u32::MAX;

/// Everything the overlay nodes read.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Control-plane revision it was built from.
    pub revision: u64,
    /// This host's underlay (tunnel source) address, host order; 0 = no overlay here.
    pub underlay_ip: u32,
    /// The tunnel address of this host's gateway group (host order), 0 if none: Geneve to
    /// it is decapsulated too (while this host is the group's VRRP master it owns it).
    pub tunnel_ip: u32,
    /// This host's part in a gateway group (north-south), if it is a member of one.
    pub gateway: Option<gateway::GatewayRole>,
    /// Largest inner IPv4 packet that fits the underlay (underlay MTU − 50).
    pub mtu: u16,
    /// VPCs by index.
    pub vpcs: Box<[Vpc]>,
    /// VNI → VPC index.
    pub by_vni: FxHashMap<u32, u16>,
    /// Every port of every VPC, by index.
    pub endpoints: Box<[Endpoint]>,
    /// (VPC index, IPv4 host order) → endpoint index.
    pub by_ip: FxHashMap<(u16, u32), u32>,
    /// MAC → endpoint index (MACs are unique across the cloud).
    pub by_mac: FxHashMap<Mac, u32>,
    /// DPDK port index → the endpoint bound to it here, or [`NO_ENDPOINT`].
    pub local: Box<[u32]>,
    /// Compiled security groups of the local endpoints (indexed by `Endpoint::rules`).
    pub rule_sets: Box<[RuleSet]>,
    /// A fingerprint of each rule set: a connection recorded under another one is checked
    /// again (rules changed).
    pub epochs: Box<[u32]>,
    /// Names of the denial counter slots (shared with the control thread's allocator).
    pub counters: Arc<CounterSlots>,
}

/// One VPC's router.
#[derive(Debug, Clone)]
pub struct Vpc {
    /// Object name.
    pub name: String,
    /// Geneve VNI.
    pub vni: u32,
    /// Its subnets.
    pub subnets: Box<[Subnet]>,
    /// Its static routes.
    pub routes: Box<[VpcRoute]>,
}

/// A subnet: an L2 segment whose gateway address is the distributed router.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Object name.
    pub name: String,
    /// Network.
    pub prefix: Prefix,
    /// The router's address in it (host order).
    pub gateway: u32,
}

/// A static route of a VPC's router.
#[derive(Debug, Clone)]
pub struct VpcRoute {
    /// Destination.
    pub prefix: Prefix,
    /// What happens to matching packets.
    pub target: VpcTarget,
}

/// Where a VPC route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcTarget {
    /// To the endpoint holding the next-hop address.
    Endpoint(u32),
    /// The next hop is no port's address (yet): dropped, counted.
    NextHopUnknown,
    /// Dropped silently, counted.
    Blackhole,
    /// Dropped with ICMP destination unreachable.
    Unreachable,
}

/// Where a port lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// On this host, DPDK port index.
    Local(u16),
    /// On another host, at this underlay address (host order).
    Remote(u32),
    /// Its host is unknown or has no underlay address.
    Unplaced,
}

/// A port of a VPC.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Object name.
    pub name: String,
    /// VPC index.
    pub vpc: u16,
    /// Subnet index within the VPC.
    pub subnet: u16,
    /// Its MAC.
    pub mac: Mac,
    /// Its addresses (host order).
    pub ips: Box<[u32]>,
    /// Where it lives.
    pub at: Location,
    /// Index of its compiled security groups in [`Overlay::rule_sets`] (local ports).
    pub rules: u32,
}

/// What a VPC's router does with a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteResult {
    /// Deliver to this endpoint.
    Endpoint(u32),
    /// Inside a subnet, but no port has the address (ICMP host unreachable).
    NoPort,
    /// No subnet or route covers it (ICMP net unreachable).
    NoRoute,
    /// A route's next hop is no port.
    NextHopUnknown,
    /// A blackhole route.
    Blackhole,
    /// An unreachable route.
    Unreachable,
}

impl Overlay {
    /// True if this host takes part in the overlay.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.underlay_ip != 0
    }

    /// The endpoint bound to DPDK port `port` here.
    #[inline]
    pub fn local_endpoint(&self, port: u16) -> Option<u32> {
        self.local
            .get(usize::from(port))
            .copied()
            .filter(|e| *e != NO_ENDPOINT)
    }

    /// Endpoint by index.
    #[inline]
    pub fn endpoint(&self, index: u32) -> Option<&Endpoint> {
        self.endpoints.get(index as usize)
    }

    /// The endpoint with address `ip` in VPC `vpc`.
    #[inline]
    pub fn endpoint_by_ip(&self, vpc: u16, ip: u32) -> Option<u32> {
        self.by_ip.get(&(vpc, ip)).copied()
    }

    /// The endpoint with MAC `mac`.
    #[inline]
    pub fn endpoint_by_mac(&self, mac: &Mac) -> Option<u32> {
        self.by_mac.get(mac).copied()
    }

    /// The router's decision for `dst` in VPC `vpc`: a port's own address first, then the
    /// longest subnet or route that covers it.
    pub fn route(&self, vpc: u16, dst: u32) -> RouteResult {
        if let Some(e) = self.endpoint_by_ip(vpc, dst) {
            return RouteResult::Endpoint(e);
        }
        let Some(v) = self.vpcs.get(usize::from(vpc)) else {
            return RouteResult::NoRoute;
        };
        let mut best: Option<(u8, RouteResult)> = None;
        let mut consider = |len: u8, r: RouteResult| {
            if best.is_none_or(|(l, _)| len > l) {
                best = Some((len, r));
            }
        };
        for s in v.subnets.iter() {
            if s.prefix.contains_bits(dst) {
                consider(s.prefix.length(), RouteResult::NoPort);
            }
        }
        for r in v.routes.iter() {
            if r.prefix.contains_bits(dst) {
                consider(
                    r.prefix.length(),
                    match r.target {
                        VpcTarget::Endpoint(e) => RouteResult::Endpoint(e),
                        VpcTarget::NextHopUnknown => RouteResult::NextHopUnknown,
                        VpcTarget::Blackhole => RouteResult::Blackhole,
                        VpcTarget::Unreachable => RouteResult::Unreachable,
                    },
                );
            }
        }
        best.map(|(_, r)| r).unwrap_or(RouteResult::NoRoute)
    }

    /// The prefix that decides where `dst` goes in VPC `vpc` (what [`Overlay::route`]
    /// chose): the port's /32, else the longest subnet or static route. For traces.
    pub fn route_prefix(&self, vpc: u16, dst: u32) -> Option<Prefix> {
        if self.endpoint_by_ip(vpc, dst).is_some() {
            return Prefix::new(std::net::Ipv4Addr::from(dst), 32).ok();
        }
        let v = self.vpcs.get(usize::from(vpc))?;
        let subnets = v.subnets.iter().map(|s| s.prefix);
        let routes = v.routes.iter().map(|r| r.prefix);
        subnets
            .chain(routes)
            .filter(|p| p.contains_bits(dst))
            .max_by_key(|p| p.length())
    }

    /// The gateway address of endpoint `e`'s subnet.
    pub fn gateway_of(&self, e: &Endpoint) -> Option<u32> {
        self.vpcs
            .get(usize::from(e.vpc))?
            .subnets
            .get(usize::from(e.subnet))
            .map(|s| s.gateway)
    }
}
