//! The immutable forwarding snapshot workers read: ports, FIB, adjacencies and resolved
//! neighbours. The control thread builds a new one on every change and swaps it in
//! atomically (see [`super::SnapshotCell`]); workers never lock or wait.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::fib::Fib;

/// A MAC address.
pub type Mac = [u8; 6];

/// Resolved neighbours by (port, IPv4 in host order), with a fast non-cryptographic hash
/// (the keys are ours, not attacker-chosen in bulk: the table is bounded by the ARP cache).
pub type NeighbourMap = rustc_hash::FxHashMap<(u16, u32), Mac>;

/// What workers need to know about one port (index = DPDK port position in the config).
#[derive(Debug, Clone)]
pub struct PortView {
    /// Port name from the configuration (e.g. "eth0").
    pub name: String,
    /// The port's own MAC address (source of everything we send).
    pub mac: Mac,
    /// IP MTU of the port (bytes of IPv4 packet, not counting Ethernet).
    pub mtu: u16,
    /// Administrative state: false drops egress with `PortDown`.
    pub up: bool,
    /// Addresses configured on the port, with prefix length.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// VRRP instances run on the port: `ethernet-input` hands its VRRP advertisements
    /// (IPv4 protocol 112) to the control thread.
    pub vrrp: bool,
    /// Virtual MACs this port holds as VRRP master (`use_vmac`), with the addresses each
    /// answers ARP for: frames to them are accepted, ARP replies for them come from them.
    pub vmacs: Vec<(Ipv4Addr, Mac)>,
}

impl PortView {
    /// The MAC ARP replies for `ip` come from: its virtual MAC, else the port's.
    #[inline]
    pub fn mac_for(&self, ip: Ipv4Addr) -> Mac {
        self.vmacs
            .iter()
            .find(|(a, _)| *a == ip)
            .map_or(self.mac, |(_, m)| *m)
    }

    /// True if `dst` is one of the port's virtual MACs.
    #[inline]
    pub fn has_vmac(&self, dst: &[u8]) -> bool {
        self.vmacs.iter().any(|(_, m)| dst.get(..6) == Some(&m[..]))
    }

    /// The address ICMP errors generated on this port come from (first configured one).
    pub fn primary_addr(&self) -> Option<Ipv4Addr> {
        self.addrs.first().map(|(a, _)| *a)
    }
}

/// Where a FIB entry sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjacency {
    /// One of our own addresses: deliver to the local node (ICMP echo etc.).
    Local,
    /// Directly connected subnet on `port`: the destination itself is the neighbour.
    Attached { port: u16 },
    /// Via a gateway on `port`; `mac` is filled in when the gateway is resolved.
    Gateway {
        port: u16,
        gw: Ipv4Addr,
        mac: Option<Mac>,
    },
    /// Silently discard (counted as `RouteBlackhole`).
    Blackhole,
    /// Discard and answer ICMP destination-unreachable (counted as `RouteUnreachable`).
    Unreachable,
}

/// An immutable, self-consistent view of everything the forwarding path reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Monotonic revision, bumped on every published change.
    pub revision: u64,
    /// Ports by index.
    pub ports: Arc<[PortView]>,
    /// Longest-prefix-match table: destination → index into `adjacencies`.
    pub fib: Arc<Fib>,
    /// Adjacencies referenced by the FIB.
    pub adjacencies: Arc<[Adjacency]>,
    /// Resolved neighbours: (port, IPv4 as u32 host order) → MAC.
    pub neighbours: Arc<NeighbourMap>,
    /// The VPCs' distributed routers, ports and security groups (empty without a control
    /// plane).
    pub overlay: Arc<crate::overlay::Overlay>,
    /// NAT (gateways): the outside port, source NAT rules and floating IPs.
    pub nat: Arc<crate::nat::NatConfig>,
}

impl Snapshot {
    /// The MAC of neighbour `ip` on `port`, if resolved.
    #[inline]
    pub fn neighbour(&self, port: u16, ip: u32) -> Option<Mac> {
        self.neighbours.get(&(port, ip)).copied()
    }

    /// True if `ip` is one of our addresses on `port`.
    pub fn is_local_on(&self, port: u16, ip: Ipv4Addr) -> bool {
        self.ports
            .get(port as usize)
            .is_some_and(|p| p.addrs.iter().any(|(a, _)| *a == ip))
    }
}
