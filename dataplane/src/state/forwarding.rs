//! The desired forwarding configuration — ports with their addresses, static routes and
//! static neighbours — as plain values. `config.rs` produces one from host.toml;
//! [`super::Tables`] checks it and turns it into snapshots.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::Mac;
use crate::fib::Prefix;

/// Accepted IP MTUs.
pub const MTU_RANGE: RangeInclusive<u16> = 68..=9000;
/// MTU used when the configuration gives none.
pub const DEFAULT_MTU: u16 = 1500;

/// Everything the forwarding tables are built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardingConfig {
    /// Ports by index (the DPDK port order).
    pub ports: Vec<PortConfig>,
    /// Static routes.
    pub routes: Vec<RouteConfig>,
    /// Static neighbours.
    pub neighbours: Vec<StaticNeighbour>,
}

/// One port's forwarding settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Unique name ("eth0").
    pub name: String,
    /// MAC to use; `None` until DPDK tells us the port's own (see `Tables::set_port_mac`).
    pub mac: Option<Mac>,
    /// IP MTU.
    pub mtu: u16,
    /// Administratively up.
    pub up: bool,
    /// Addresses; each adds a connected route and a local /32.
    pub addresses: Vec<IfAddr>,
}

impl PortConfig {
    /// A port that is up, with the default MTU, no MAC yet and no address.
    pub fn new(name: impl Into<String>) -> PortConfig {
        PortConfig {
            name: name.into(),
            mac: None,
            mtu: DEFAULT_MTU,
            up: true,
            addresses: Vec::new(),
        }
    }
}

/// A static route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteConfig {
    /// Destination.
    pub prefix: Prefix,
    /// Where matching packets go.
    pub target: RouteTarget,
}

/// Where a static route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Via a gateway; the port follows from the connected subnet that contains it.
    Via(Ipv4Addr),
    /// Directly attached on port `n`: the destination itself is the neighbour.
    Port(u16),
    /// Drop silently.
    Blackhole,
    /// Drop and answer ICMP destination-unreachable.
    Unreachable,
}

/// A configured neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeighbour {
    /// Port index.
    pub port: u16,
    /// Neighbour address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: Mac,
}

/// An interface address: the address and its subnet's length, e.g. `10.0.1.1/24` (host
/// bits are the point, unlike a [`Prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfAddr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length of its subnet.
    pub len: u8,
}

/// Text that is not `a.b.c.d/len`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IPv4 CIDR")]
pub struct NotACidr(pub String);

impl IfAddr {
    /// An interface address (not checked; see [`IfAddr::check`]).
    pub const fn new(addr: Ipv4Addr, len: u8) -> IfAddr {
        IfAddr { addr, len }
    }

    /// The subnet the address is on.
    pub fn subnet(&self) -> Prefix {
        Prefix::truncate(self.addr, self.len.min(32)).expect("length clamped to 32")
    }

    /// Checks the address can be assigned: length 1..=32, a unicast host address, and for
    /// subnets with room for it, neither the network nor the broadcast address.
    pub fn check(&self) -> Result<(), String> {
        if self.len == 0 || self.len > 32 {
            return Err(format!("prefix length {} must be 1..=32", self.len));
        }
        if let Some(problem) = not_unicast(self.addr) {
            return Err(format!("{} is {problem}", self.addr));
        }
        if let Some(which) = reserved_in_subnet(self.addr, &self.subnet()) {
            return Err(format!(
                "{} is the {which} address of {}",
                self.addr,
                self.subnet()
            ));
        }
        Ok(())
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IfAddr {
    type Err = NotACidr;

    /// Parses `a.b.c.d/len` with `len` 0..=32 (host bits allowed).
    fn from_str(s: &str) -> Result<IfAddr, NotACidr> {
        let bad = || NotACidr(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(IfAddr::new(addr.parse().map_err(|_| bad())?, len))
    }
}

/// Why `ip` cannot be a host's unicast address, if it cannot.
pub fn not_unicast(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.octets()[0] >= 240 {
        Some("a reserved (class E) address")
    } else {
        None
    }
}

/// "network" or "broadcast" if `ip` is one of those of `subnet` (only for /30 and wider;
/// /31 and /32 have no such addresses).
pub fn reserved_in_subnet(ip: Ipv4Addr, subnet: &Prefix) -> Option<&'static str> {
    let bits = u32::from(ip);
    if subnet.length() > 30 || !subnet.contains(ip) {
        None
    } else if bits == subnet.first() {
        Some("network")
    } else if bits == subnet.last() {
        Some("broadcast")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IfAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_interface_addresses_with_host_bits() {
        let x = a("10.0.1.1/24");
        assert_eq!(x.addr, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(x.subnet().to_string(), "10.0.1.0/24");
        assert_eq!(x.to_string(), "10.0.1.1/24");
        for bad in [
            "10.0.1.300/24",
            "10.0.1.1",
            "10.0.1.1/33",
            "10.0.1.1/",
            "x/24",
            "10.0.1.1/+4",
        ] {
            assert_eq!(
                bad.parse::<IfAddr>().unwrap_err().to_string(),
                format!("{bad:?} is not an IPv4 CIDR")
            );
        }
    }

    #[test]
    fn checks_assignable_addresses() {
        assert_eq!(a("10.0.1.1/24").check(), Ok(()));
        assert_eq!(a("10.0.1.0/31").check(), Ok(()));
        assert_eq!(a("10.0.1.7/32").check(), Ok(()));
        assert_eq!(
            a("10.0.1.0/24").check().unwrap_err(),
            "10.0.1.0 is the network address of 10.0.1.0/24"
        );
        assert_eq!(
            a("10.0.1.255/24").check().unwrap_err(),
            "10.0.1.255 is the broadcast address of 10.0.1.0/24"
        );
        assert_eq!(
            a("10.0.1.1/0").check().unwrap_err(),
            "prefix length 0 must be 1..=32"
        );
        assert!(a("224.0.0.5/24").check().unwrap_err().contains("multicast"));
        assert!(a("127.0.0.1/8").check().unwrap_err().contains("loopback"));
        assert!(a("0.0.0.0/8").check().unwrap_err().contains("unspecified"));
    }
}
