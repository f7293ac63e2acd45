//! [`StateError`]: why [`super::Tables`] refused a change. Every message names the object
//! and the value at fault; a refused change leaves the tables exactly as they were.

use std::net::Ipv4Addr;

use super::forwarding::IfAddr;
use crate::fib::{FibError, Prefix};

/// A change the forwarding tables refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Port index out of range.
    #[error("port {index} does not exist (there are {count} ports)")]
    NoSuchPort {
        /// Index asked for.
        index: u16,
        /// Number of ports.
        count: usize,
    },
    /// Port name unknown.
    #[error("port {name:?} does not exist")]
    NoSuchPortName {
        /// Name asked for.
        name: String,
    },
    /// Two ports with one name, or a bad name.
    #[error("port {index}: {reason}")]
    BadPort {
        /// Port index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// MTU outside 68..=9000.
    #[error("port {port}: MTU {mtu} is out of range (68..=9000)")]
    BadMtu {
        /// Port name.
        port: String,
        /// MTU given.
        mtu: u16,
    },
    /// A port MAC that is multicast or zero.
    #[error("port {port}: MAC {mac} is not a unicast address")]
    BadPortMac {
        /// Port name.
        port: String,
        /// MAC given (text form).
        mac: String,
    },
    /// An address that cannot be assigned.
    #[error("address {addr} on {port}: {reason}")]
    BadAddress {
        /// Address given.
        addr: IfAddr,
        /// Port name.
        port: String,
        /// What is wrong.
        reason: String,
    },
    /// The address is already assigned.
    #[error("address {addr} already on {port}")]
    AddressExists {
        /// Address given.
        addr: IfAddr,
        /// Port that has it.
        port: String,
    },
    /// The address's subnet is connected on another port.
    #[error("address {addr} on {port}: subnet {subnet} is already connected on {other}")]
    SubnetOnOtherPort {
        /// Address given.
        addr: IfAddr,
        /// Port asked for.
        port: String,
        /// Its subnet.
        subnet: Prefix,
        /// Port that has the subnet.
        other: String,
    },
    /// The address's subnet or /32 equals a static route's prefix.
    #[error("address {addr} on {port}: {prefix} is already static route {route}")]
    AddressConflictsRoute {
        /// Address given.
        addr: IfAddr,
        /// Port asked for.
        port: String,
        /// The colliding prefix.
        prefix: Prefix,
        /// The static route, described.
        route: String,
    },
    /// The address equals a route's gateway.
    #[error("address {addr} on {port}: {} is the gateway of route {route}", addr.addr)]
    AddressIsGateway {
        /// Address given.
        addr: IfAddr,
        /// Port asked for.
        port: String,
        /// The route, described.
        route: String,
    },
    /// Removing an address the port does not have.
    #[error("address {addr} is not on {port}")]
    NoSuchAddress {
        /// Address given.
        addr: IfAddr,
        /// Port asked for.
        port: String,
    },
    /// Removing the address would leave a route's gateway off every connected subnet.
    #[error("address {addr} on {port} is needed by route {route}: its gateway would not be on any connected subnet")]
    AddressInUse {
        /// Address given.
        addr: IfAddr,
        /// Port asked for.
        port: String,
        /// The route, described.
        route: String,
    },
    /// A static route for the prefix exists.
    #[error("route {prefix} already exists ({existing})")]
    RouteExists {
        /// Prefix given.
        prefix: Prefix,
        /// The existing route's target, described.
        existing: String,
    },
    /// No static route for the prefix.
    #[error("route {prefix} does not exist")]
    NoSuchRoute {
        /// Prefix given.
        prefix: Prefix,
    },
    /// The gateway is on no connected subnet.
    #[error("route {prefix}: gateway {gw} is not on any connected subnet")]
    GatewayUnreachable {
        /// Route prefix.
        prefix: Prefix,
        /// Gateway given.
        gw: Ipv4Addr,
    },
    /// The gateway is one of our addresses.
    #[error("route {prefix}: gateway {gw} is our own address on {port}")]
    GatewayIsLocal {
        /// Route prefix.
        prefix: Prefix,
        /// Gateway given.
        gw: Ipv4Addr,
        /// Port that has the address.
        port: String,
    },
    /// The gateway is the network or broadcast address of its subnet.
    #[error("route {prefix}: gateway {gw} is the {which} address of {subnet}")]
    GatewayNotHost {
        /// Route prefix.
        prefix: Prefix,
        /// Gateway given.
        gw: Ipv4Addr,
        /// "network" or "broadcast".
        which: &'static str,
        /// The connected subnet.
        subnet: Prefix,
    },
    /// A static route for a connected subnet.
    #[error("route {prefix} conflicts with the connected subnet on {port}")]
    RouteIsConnected {
        /// Route prefix.
        prefix: Prefix,
        /// Port with the subnet.
        port: String,
    },
    /// A static /32 route for one of our addresses.
    #[error("route {prefix} conflicts with our own address on {port}")]
    RouteIsLocal {
        /// Route prefix.
        prefix: Prefix,
        /// Port with the address.
        port: String,
    },
    /// A static neighbour that cannot be added.
    #[error("neighbour {ip} on {port}: {reason}")]
    BadNeighbour {
        /// Neighbour address.
        ip: Ipv4Addr,
        /// Port name.
        port: String,
        /// What is wrong.
        reason: String,
    },
    /// Removing a static neighbour that does not exist.
    #[error("no static neighbour {ip} on {port}")]
    NoSuchNeighbour {
        /// Neighbour address.
        ip: Ipv4Addr,
        /// Port name.
        port: String,
    },
    /// The FIB refused (out of tbl8 groups).
    #[error(transparent)]
    Fib(#[from] FibError),
    /// More distinct next hops than the FIB can encode.
    #[error("too many distinct next hops (at most {max})")]
    TooManyAdjacencies {
        /// The limit.
        max: u32,
    },
}
