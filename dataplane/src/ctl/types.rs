//! The plain Rust values an [`AdminBackend`](super::AdminBackend) hands to and takes from
//! the admin server: what `show ...` reports and what mutations ask for. No protobuf here;
//! `convert.rs` maps them to the wire types.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::cidr::Ipv4Cidr;

pub use crate::worker::poll::PollMode;

/// One worker: its id and the lcore it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Worker id (0-based, dense).
    pub id: u32,
    /// DPDK lcore id.
    pub lcore: u32,
}

/// Dataplane status. The server adds its own version string.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Configuration revision (bumped on every published change).
    pub revision: u64,
    /// Time since the dataplane started.
    pub uptime: Duration,
    /// Polling mode of the workers.
    pub poll_mode: PollMode,
    /// Workers in id order.
    pub workers: Vec<WorkerInfo>,
    /// The control-plane feed, when the dataplane has one.
    pub controlplane: Option<ControlPlaneStatus>,
}

/// The control-plane feed of a dataplane started with `--controlplane`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlaneStatus {
    /// Control-plane addresses, as given.
    pub servers: String,
    /// The host whose slice is followed.
    pub host: String,
    /// The watch stream is open.
    pub connected: bool,
    /// The control-plane revision the tables implement (0: none yet).
    pub applied_revision: u64,
    /// Why the latest revision received could not be applied ("" = it was).
    pub apply_error: String,
    /// The latest revision received.
    pub received_revision: u64,
    /// The tables come from the cached slice (nothing received since the start).
    pub from_cache: bool,
}

/// Port counters (totals since start or the last clear).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped because the rx queue was full.
    pub rx_missed: u64,
    /// Erroneous received packets.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
}

/// One port as `show interfaces` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Port index (position in the configuration).
    pub index: u16,
    /// Configured name.
    pub name: String,
    /// DPDK devargs or PCI address.
    pub devargs: String,
    /// MAC address in use.
    pub mac: [u8; 6],
    /// IP MTU.
    pub mtu: u16,
    /// Administrative state.
    pub admin_up: bool,
    /// Link (operational) state.
    pub link_up: bool,
    /// Link speed in Mbit/s, 0 if down or unknown.
    pub link_speed_mbps: u32,
    /// Configured addresses.
    pub addresses: Vec<Ipv4Cidr>,
    /// Port counters.
    pub counters: PortCounters,
}

/// Dispatch statistics of one node on one worker (as measured by the dispatcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRuntime {
    /// Node name ("ip4-lookup").
    pub name: String,
    /// Times the node was dispatched.
    pub calls: u64,
    /// Packets it processed (VPP's "vectors").
    pub vectors: u64,
    /// TSC cycles spent in it.
    pub clocks: u64,
}

/// Loop and node statistics of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRuntime {
    /// Worker id.
    pub id: u32,
    /// lcore it runs on.
    pub lcore: u32,
    /// Poll rounds.
    pub polls: u64,
    /// Poll rounds that received nothing.
    pub idle_polls: u64,
    /// Sleeps taken by adaptive polling.
    pub sleeps: u64,
    /// Packets the dataplane consumed itself (ARP replies addressed to it).
    pub consumed: u64,
    /// ICMP errors sent.
    pub icmp_sent: u64,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_rate_limited: u64,
    /// Nodes in graph order.
    pub nodes: Vec<NodeRuntime>,
}

/// The count of one drop reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    /// Stable snake_case reason name (`DropReason::name`).
    pub reason: String,
    /// Human description (`DropReason::description`).
    pub description: String,
    /// Packets dropped for this reason.
    pub count: u64,
}

/// Drop counters of one worker, one entry per reason (zeros included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerErrors {
    /// Worker id.
    pub worker: u32,
    /// Counters in reason order.
    pub counts: Vec<ErrorCount>,
}

pub use crate::state::{RouteKind, RouteOrigin};

/// One routing-table entry as `show routes` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination prefix (no host bits).
    pub prefix: Ipv4Cidr,
    /// What the route does.
    pub kind: RouteKind,
    /// Gateway, for [`RouteKind::Gateway`].
    pub next_hop: Option<Ipv4Addr>,
    /// Egress port name (local: the port owning the address); `None` for discard routes and
    /// for gateways not on any connected subnet.
    pub port: Option<String>,
    /// Static or connected.
    pub origin: RouteOrigin,
}

/// Where a new static route sends packets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Via a gateway (the port follows from the connected route covering it).
    Via(Ipv4Addr),
    /// Directly attached on the named port.
    Port(String),
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP destination-unreachable.
    Unreachable,
}

/// A static route to add. The server guarantees `prefix.is_network()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Destination prefix, host bits clear.
    pub prefix: Ipv4Cidr,
    /// Where it goes.
    pub target: RouteTarget,
}

/// Neighbour-table entry state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    /// Resolution in progress.
    Incomplete,
    /// Recently confirmed.
    Reachable,
    /// Usable but due for re-confirmation.
    Stale,
    /// Resolution failed.
    Failed,
    /// Configured; never expires.
    Static,
}

/// One neighbour as `show neighbours` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourInfo {
    /// Port name.
    pub port: String,
    /// Neighbour address.
    pub ip: Ipv4Addr,
    /// Its MAC, once resolved.
    pub mac: Option<[u8; 6]>,
    /// Entry state.
    pub state: NeighbourState,
    /// Time since the entry last changed or was confirmed.
    pub age: Duration,
}
