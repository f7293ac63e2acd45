//! What the admin API lists: routes with their adjacency rendered (prefix, kind, next hop,
//! port name, origin) and neighbours (port, address, MAC, state, age).

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::adjacency::to_adjacency;
use super::mac::MacDisplay;
use super::neighbour::NeighbourState;
use super::{Adjacency, Mac, Tables};
use crate::fib::Prefix;

/// What a route does with matching packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// One of our own addresses: deliver locally.
    Local,
    /// Directly attached to a port.
    Connected,
    /// Via a gateway.
    Gateway,
    /// Drop silently.
    Blackhole,
    /// Drop and answer ICMP destination-unreachable.
    Unreachable,
}

impl RouteKind {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            RouteKind::Local => "local",
            RouteKind::Connected => "connected",
            RouteKind::Gateway => "gateway",
            RouteKind::Blackhole => "blackhole",
            RouteKind::Unreachable => "unreachable",
        }
    }
}

/// Where a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteOrigin {
    /// Configured (host.toml, routes file, admin API).
    Static,
    /// Follows from an interface address (connected subnets and local /32s).
    Connected,
    /// A host route of the control plane (`--controlplane`).
    ControlPlane,
}

/// One FIB entry, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination.
    pub prefix: Prefix,
    /// What it does.
    pub kind: RouteKind,
    /// Static or derived from an address.
    pub origin: RouteOrigin,
    /// Gateway, for [`RouteKind::Gateway`].
    pub next_hop: Option<Ipv4Addr>,
    /// Gateway MAC once resolved.
    pub next_hop_mac: Option<Mac>,
    /// Egress port (for local routes: the port owning the address).
    pub port: Option<u16>,
    /// Its name.
    pub port_name: Option<String>,
    /// The adjacency the workers see.
    pub adjacency: Adjacency,
}

impl fmt::Display for RouteEntry {
    /// `10.9.0.0/16 via 10.0.1.2 dev eth0 static`, `10.0.1.1/32 local dev eth0 connected`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        match (self.kind, self.next_hop) {
            (RouteKind::Gateway, Some(gw)) => write!(f, " via {gw}")?,
            (RouteKind::Connected, _) => {}
            (kind, _) => write!(f, " {}", kind.name())?,
        }
        if let Some(name) = &self.port_name {
            write!(f, " dev {name}")?;
        }
        let origin = match self.origin {
            RouteOrigin::Static => "static",
            RouteOrigin::Connected => "connected",
            RouteOrigin::ControlPlane => "controlplane",
        };
        write!(f, " {origin}")
    }
}

/// One neighbour entry, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourEntry {
    /// Port index.
    pub port: u16,
    /// Port name.
    pub port_name: String,
    /// Neighbour address.
    pub ip: Ipv4Addr,
    /// MAC once known.
    pub mac: Option<Mac>,
    /// State.
    pub state: NeighbourState,
    /// Time in this state (since the last confirmation for reachable entries).
    pub age: Duration,
    /// True if a route uses it as gateway.
    pub pinned: bool,
}

impl fmt::Display for NeighbourEntry {
    /// `10.0.1.2 dev eth0 lladdr 02:00:00:00:00:02 reachable 3s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.ip, self.port_name)?;
        if let Some(mac) = self.mac {
            write!(f, " lladdr {}", MacDisplay(mac))?;
        }
        write!(f, " {}", self.state)?;
        if self.state != NeighbourState::Static {
            write!(f, " {}s", self.age.as_secs())?;
        }
        Ok(())
    }
}

impl Tables {
    /// Every FIB entry (static, connected and local), sorted by prefix.
    pub fn route_entries(&self) -> Vec<RouteEntry> {
        self.fib
            .routes()
            .map(|(addr, len, nh)| {
                let prefix = Prefix::new(addr, len).expect("FIB prefixes are valid");
                let adjacency = self
                    .adj
                    .key(nh)
                    .map_or(Adjacency::Blackhole, |k| to_adjacency(k, &self.neigh));
                let origin = if self.controlplane_routes.contains(&prefix) {
                    RouteOrigin::ControlPlane
                } else if self.statics.contains_key(&prefix) {
                    RouteOrigin::Static
                } else {
                    RouteOrigin::Connected
                };
                let (kind, next_hop, next_hop_mac, port) = match adjacency {
                    Adjacency::Local => (
                        RouteKind::Local,
                        None,
                        None,
                        self.locals.get(&addr).copied(),
                    ),
                    Adjacency::Attached { port } => (RouteKind::Connected, None, None, Some(port)),
                    Adjacency::Gateway { port, gw, mac } => {
                        (RouteKind::Gateway, Some(gw), mac, Some(port))
                    }
                    Adjacency::Blackhole => (RouteKind::Blackhole, None, None, None),
                    Adjacency::Unreachable => (RouteKind::Unreachable, None, None, None),
                };
                RouteEntry {
                    prefix,
                    kind,
                    origin,
                    next_hop,
                    next_hop_mac,
                    port,
                    port_name: port.map(|p| self.name_of(p)),
                    adjacency,
                }
            })
            .collect()
    }

    /// Every neighbour entry, sorted by port then address; ages relative to `now`.
    pub fn neighbour_entries(&self, now: Duration) -> Vec<NeighbourEntry> {
        self.neigh
            .entries(now)
            .map(|e| NeighbourEntry {
                port: e.port,
                port_name: self.name_of(e.port),
                ip: e.ip,
                mac: e.mac,
                state: e.state,
                age: e.age,
                pinned: e.pinned,
            })
            .collect()
    }
}
