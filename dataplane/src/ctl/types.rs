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
    /// Control-plane NAT objects left out for clashing with host.toml's `[nat]`.
    pub nat_conflicts: Vec<String>,
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
    /// The control-plane port (VM port) bound to this port, if any.
    pub endpoint: Option<String>,
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
    /// Entries in the connection table (expired ones not yet swept included).
    pub connections: u64,
    /// Entries the connection table holds at most.
    pub connection_capacity: u64,
    /// NAT sessions in the worker's table (expired ones not yet swept included; 0 without
    /// NAT).
    pub nat_sessions: u64,
    /// NAT sessions removed since start because a configuration change took away their
    /// floating IP or source NAT rule.
    pub nat_sessions_revoked: u64,
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

pub use crate::conntrack::ConnState;

/// Most connections one `show connections` reply may carry (it must fit a gRPC message).
pub const MAX_CONNECTIONS_LIMIT: usize = 20_000;
/// Connections shown when the request sets no limit.
pub const DEFAULT_CONNECTIONS_LIMIT: usize = 1000;

/// Which connections `show connections` asks for; `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnQuery {
    /// A dataplane port name or the control-plane port bound to one.
    pub port: Option<String>,
    /// An address that is the source or the destination.
    pub ip: Option<Ipv4Addr>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// Connection state.
    pub state: Option<ConnState>,
    /// Most connections in the reply, over all workers (1..=[`MAX_CONNECTIONS_LIMIT`]).
    pub limit: usize,
}

/// One tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The dataplane port it is tracked on (its conntrack zone).
    pub port: String,
    /// The control-plane port bound to that port, if any.
    pub endpoint: Option<String>,
    /// IP protocol number.
    pub protocol: u8,
    /// Originator address.
    pub src: Ipv4Addr,
    /// Originator port (ICMP echo: the identifier).
    pub src_port: u16,
    /// Responder address.
    pub dst: Ipv4Addr,
    /// Responder port (ICMP echo: the identifier).
    pub dst_port: u16,
    /// State.
    pub state: ConnState,
    /// Time until it expires without further packets.
    pub expires: Duration,
    /// Packets, `[original, reply]`.
    pub packets: [u64; 2],
    /// Bytes, `[original, reply]`.
    pub bytes: [u64; 2],
}

/// One worker's part of `show connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerConnections {
    /// Worker id.
    pub worker: u32,
    /// Live connections in its table.
    pub entries: u64,
    /// Entries its table holds at most.
    pub capacity: u64,
    /// Connections matching the query, those beyond the limit included.
    pub matched: u64,
    /// The matching connections shown.
    pub connections: Vec<ConnectionInfo>,
    /// Why the worker did not answer; `None` when it did.
    pub error: Option<String>,
}

/// What `show nat-sessions` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatQuery {
    /// A VPC, by name or VNI ([`crate::nat::ROUTED_VPC`], 0, for the routed gateway's
    /// inside); resolved to its VNI.
    pub vpc: Option<String>,
    /// An address that is the inside, outside or remote one.
    pub ip: Option<Ipv4Addr>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// Most sessions in the reply, over all workers (1..=[`MAX_CONNECTIONS_LIMIT`]).
    pub limit: usize,
}

impl NatQuery {
    /// The VNI the query's VPC names, given the `(name, vni)` of the VPCs this host knows:
    /// a VPC name first, else `routed` or a number (a VNI; 0 is the routed gateway's inside).
    /// `None` without a VPC filter; `NotFound` (field "vpc") for anything else.
    pub fn vni<'a>(
        &self,
        mut vpcs: impl Iterator<Item = (&'a str, u32)>,
    ) -> Result<Option<u32>, super::backend::AdminError> {
        let Some(v) = &self.vpc else {
            return Ok(None);
        };
        if let Some((_, vni)) = vpcs.find(|(name, _)| *name == v.as_str()) {
            return Ok(Some(vni));
        }
        if v == "routed" {
            return Ok(Some(crate::nat::ROUTED_VPC));
        }
        v.parse::<u32>().map(Some).map_err(|_| {
            super::backend::AdminError::not_found(
                "vpc",
                format!(
                    "no VPC named {v:?} in this host's overlay (a VNI, or `routed`, may be given)"
                ),
            )
        })
    }

    /// Keeps at most `limit` sessions over all workers, in worker order (the counts stay).
    pub fn truncate(&self, workers: &mut [WorkerNatSessions]) {
        let mut left = self.limit;
        for w in workers {
            w.sessions.truncate(left);
            left -= w.sessions.len();
        }
    }
}

/// One NAT session as `show nat-sessions` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatSessionInfo {
    /// The VPC's name, if this host's overlay knows the VNI (`None` for the routed gateway
    /// and unknown VNIs).
    pub vpc: Option<String>,
    /// The VPC's VNI (0: the routed gateway's inside).
    pub vni: u32,
    /// IP protocol number.
    pub protocol: u8,
    /// The inside address and port (ICMP echo: the identifier).
    pub inside: (Ipv4Addr, u16),
    /// The outside address and port it is translated to.
    pub outside: (Ipv4Addr, u16),
    /// The remote address and port (0 for ICMP echo: replies match any identifier).
    pub remote: (Ipv4Addr, u16),
    /// How: `snat` (endpoint-dependent), `snat-ei` (endpoint-independent), `floating-ip`.
    pub kind: &'static str,
    /// TCP progress (`opening`, `established`, `closing`), `-` for other protocols.
    pub state: &'static str,
    /// Time until it expires without further packets.
    pub expires: Duration,
}

impl NatSessionInfo {
    /// A session as session sync carries it (what a worker's dump gives), in VPC `vpc`
    /// (its name, if known).
    pub fn from_record(r: &aegis_sessionsync::Record, vpc: Option<String>) -> NatSessionInfo {
        use aegis_sessionsync::NatKind;
        let k = &r.key;
        NatSessionInfo {
            vpc,
            vni: k.vpc,
            protocol: k.proto,
            inside: (k.inside_ip, k.inside_port),
            outside: (r.outside_ip, r.outside_port),
            remote: (k.remote_ip, k.remote_port),
            kind: match r.nat {
                NatKind::SnatEndpointDependent => "snat",
                NatKind::SnatEndpointIndependent => "snat-ei",
                NatKind::FloatingIp => "floating-ip",
            },
            state: match (k.proto, r.state) {
                (6, 1) => "opening",
                (6, 2) => "established",
                (6, 3) => "closing",
                _ => "-",
            },
            expires: Duration::from_millis(u64::from(r.expires_in_ms)),
        }
    }

    /// Whether the session matches `q` (the VPC already resolved to the VNI `vni`).
    pub fn matches(&self, q: &NatQuery, vni: Option<u32>) -> bool {
        vni.is_none_or(|v| self.vni == v)
            && q.protocol.is_none_or(|p| self.protocol == p)
            && q.ip
                .is_none_or(|ip| [self.inside.0, self.outside.0, self.remote.0].contains(&ip))
    }
}

/// One worker's part of `show nat-sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerNatSessions {
    /// Worker id.
    pub worker: u32,
    /// Whether the worker runs NAT (false: this dataplane is no NAT gateway).
    pub enabled: bool,
    /// Live sessions in its table.
    pub entries: u64,
    /// Sessions its table holds at most.
    pub capacity: u64,
    /// Sessions matching the query, those beyond the limit included.
    pub matched: u64,
    /// The matching sessions shown.
    pub sessions: Vec<NatSessionInfo>,
    /// Why the worker did not answer; `None` when it did.
    pub error: Option<String>,
}

/// The overlay as this host sees it (`show vpc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayInfo {
    /// Control-plane revision the overlay was built from (0: none).
    pub revision: u64,
    /// This host's underlay address; `None` when it takes no part in the overlay.
    pub underlay_ip: Option<Ipv4Addr>,
    /// Largest inner IPv4 packet.
    pub mtu: u16,
    /// VPCs in the overlay's order.
    pub vpcs: Vec<VpcInfo>,
}

/// One VPC's router on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcInfo {
    /// Name.
    pub name: String,
    /// Geneve VNI.
    pub vni: u32,
    /// Subnets.
    pub subnets: Vec<VpcSubnetInfo>,
    /// Static routes.
    pub routes: Vec<VpcRouteInfo>,
    /// Every port of the VPC.
    pub ports: Vec<VpcPortInfo>,
}

/// A subnet of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcSubnetInfo {
    /// Name.
    pub name: String,
    /// Network.
    pub cidr: Ipv4Cidr,
    /// The distributed router's address in it.
    pub gateway: Ipv4Addr,
}

/// A static route of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcRouteInfo {
    /// Destination.
    pub prefix: Ipv4Cidr,
    /// Where it sends packets.
    pub target: VpcRouteTarget,
}

/// Where a VPC route sends packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcRouteTarget {
    /// To the named port (the holder of the next-hop address).
    Port(String),
    /// The next hop is no port's address: dropped.
    NextHopUnknown,
    /// Dropped silently.
    Blackhole,
    /// Dropped with ICMP destination unreachable.
    Unreachable,
}

/// A port of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcPortInfo {
    /// Control-plane name.
    pub name: String,
    /// Its subnet's name.
    pub subnet: String,
    /// MAC.
    pub mac: [u8; 6],
    /// Addresses.
    pub ips: Vec<Ipv4Addr>,
    /// Where it lives.
    pub location: PortLocation,
}

/// Where a VPC port lives, seen from this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortLocation {
    /// Here, on the named dataplane port.
    Local(String),
    /// On the host with this underlay address.
    Remote(Ipv4Addr),
    /// Its host is unknown or has no underlay address.
    Unplaced,
}

/// Packets denied by one security-group rule (or default), summed over the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialCount {
    /// Counter name: `GROUP/RULE_ID`, `default/ingress-deny` or `other`.
    pub rule: String,
    /// Packets denied.
    pub count: u64,
}

impl ConnQuery {
    /// A query matching every connection, with the default limit.
    pub fn all() -> ConnQuery {
        ConnQuery {
            port: None,
            ip: None,
            protocol: None,
            state: None,
            limit: DEFAULT_CONNECTIONS_LIMIT,
        }
    }

    /// Whether `c` matches (a backend that filters by names rather than by zone: the port
    /// matches the dataplane port or the endpoint name).
    pub fn matches(&self, c: &ConnectionInfo) -> bool {
        self.port
            .as_ref()
            .is_none_or(|p| *p == c.port || c.endpoint.as_ref() == Some(p))
            && self.ip.is_none_or(|ip| c.src == ip || c.dst == ip)
            && self.protocol.is_none_or(|p| c.protocol == p)
            && self.state.is_none_or(|s| c.state == s)
    }

    /// Keeps at most `limit` connections over all workers, in worker order (the counts stay
    /// as they are, so a reader sees how many were left out).
    pub fn truncate(&self, workers: &mut [WorkerConnections]) {
        let mut left = self.limit;
        for w in workers {
            w.connections.truncate(left);
            left -= w.connections.len();
        }
    }
}

/// One VRRP instance as `show vrrp` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstanceInfo {
    /// Instance name (keepalived `vrrp_instance NAME`).
    pub name: String,
    /// The dataplane port it runs on.
    pub port: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Protocol version (2 or 3).
    pub version: u8,
    /// `MASTER`, `BACKUP`, `FAULT` or `INIT`.
    pub state: String,
    /// Configured priority.
    pub priority: u8,
    /// Priority in force (tracking applied).
    pub effective_priority: u8,
    /// Our advertisement interval.
    pub interval: Duration,
    /// Preemption on (`nopreempt` turns it off).
    pub preempt: bool,
    /// Virtual addresses with their prefix lengths.
    pub addresses: Vec<Ipv4Cidr>,
    /// The master (us when MASTER; the one heard when BACKUP).
    pub master: Option<Ipv4Addr>,
    /// The master's priority.
    pub master_priority: u8,
    /// Time in the current state.
    pub in_state: Duration,
    /// Why it entered the current state.
    pub last_cause: String,
    /// State changes since start.
    pub transitions: u64,
    /// Times it became master.
    pub became_master: u64,
    /// Advertisements acted on.
    pub adverts_rx: u64,
    /// Advertisements sent.
    pub adverts_tx: u64,
    /// Priority-0 advertisements received.
    pub priority_zero_rx: u64,
    /// Priority-0 advertisements sent.
    pub priority_zero_tx: u64,
    /// Advertisements not acted on, per reason (snake_case).
    pub discards: Vec<(String, u64)>,
    /// Its sync group, if any.
    pub sync_group: Option<String>,
    /// Where it is configured: `keepalived.conf` or `gateway-group NAME`.
    pub source: String,
    /// Unicast peers (empty: the 224.0.0.18 group).
    pub peers: Vec<Ipv4Addr>,
}

impl VrrpInstanceInfo {
    /// An instance in `state` with these names and priority (configured and in force), as
    /// the master it reports itself when MASTER; VRRPv3 at 1 s, preempting, no addresses,
    /// no counts. What [`MemoryBackend`](super::MemoryBackend) users start from.
    pub fn new(name: &str, port: &str, vrid: u8, state: &str, priority: u8) -> Self {
        VrrpInstanceInfo {
            name: name.to_owned(),
            port: port.to_owned(),
            vrid,
            version: 3,
            state: state.to_owned(),
            priority,
            effective_priority: priority,
            interval: Duration::from_secs(1),
            preempt: true,
            addresses: Vec::new(),
            master: None,
            master_priority: if state == "MASTER" { priority } else { 0 },
            in_state: Duration::ZERO,
            last_cause: String::new(),
            transitions: 0,
            became_master: 0,
            adverts_rx: 0,
            adverts_tx: 0,
            priority_zero_rx: 0,
            priority_zero_tx: 0,
            discards: Vec::new(),
            sync_group: None,
            source: "keepalived.conf".to_owned(),
            peers: Vec::new(),
        }
    }
}

/// The VRRP speaker: its instances and what it refused before any instance saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VrrpInfo {
    /// Instances, in configuration order.
    pub instances: Vec<VrrpInstanceInfo>,
    /// Received frames refused by the codec or matching no instance, per reason.
    pub rx_errors: Vec<(String, u64)>,
    /// Why the control plane's gateway group does not run here as declared, in words.
    pub problems: Vec<String>,
}

/// One peer of the master's session-sync stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPeerInfo {
    /// The peer's sync address.
    pub address: Ipv4Addr,
    /// Events queued or in flight, not yet acknowledged.
    pub lag: u64,
    /// Age of the oldest unacknowledged datagram.
    pub oldest_unacked: Option<Duration>,
    /// Events queued for it.
    pub events: u64,
    /// Datagrams sent the first time.
    pub datagrams: u64,
    /// Datagrams sent again.
    pub resends: u64,
    /// Acknowledgements accepted.
    pub acks: u64,
    /// Bulk resyncs sent.
    pub bulk_resyncs: u64,
    /// Sessions sent in bulk resyncs.
    pub bulk_sessions: u64,
}

/// The gateway's session sync (`[sync]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncInfo {
    /// `master` (streams to the peers) or `backup` (receives).
    pub role: String,
    /// Gateway group id.
    pub group: u32,
    /// Our sync address.
    pub address: Option<Ipv4Addr>,
    /// UDP port.
    pub udp_port: u16,
    /// The VRRP instance that decides the role.
    pub vrrp_instance: String,
    /// Time in the current role.
    pub in_role: Duration,
    /// Role changes since start.
    pub role_changes: u64,
    /// Sessions this gateway knows (master: its own; backup: the replica).
    pub sessions: u64,
    /// Backup: a bulk resync completed in the master's current epoch.
    pub synced: bool,
    /// Backup: the master it hears.
    pub master: Option<Ipv4Addr>,
    /// Master: one entry per peer.
    pub peers: Vec<SyncPeerInfo>,
    /// Backup: datagrams applied in order.
    pub applied: u64,
    /// Backup: session events applied.
    pub events_applied: u64,
    /// Backup: duplicates.
    pub duplicates: u64,
    /// Backup: datagrams that arrived early (buffered).
    pub out_of_order: u64,
    /// Backup: bulk resyncs completed.
    pub bulk_completed: u64,
    /// Backup: resync requests sent.
    pub resync_requests: u64,
    /// Installs handed to the NAT worker.
    pub installs_pushed: u64,
    /// Installs the worker applied.
    pub installs_done: u64,
    /// Installs the worker refused (table full, no port).
    pub installs_failed: u64,
    /// NAT events the worker could not queue.
    pub events_lost: u64,
    /// Datagrams sent.
    pub tx_datagrams: u64,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Datagrams not sent: the peer's MAC is not resolved yet (resolution asked).
    pub tx_unresolved: u64,
    /// Datagrams not sent: the injection queue was full.
    pub tx_queue_full: u64,
    /// Datagrams from an address that is no peer.
    pub rx_unknown_peer: u64,
    /// Datagrams refused (authentication, parsing), per reason.
    pub rejected: Vec<(String, u64)>,
    /// The last takeover: sessions it committed before claiming, and how long it waited
    /// for the worker to install them.
    pub last_commit: Option<(u64, Duration)>,
    /// Where the peers come from: `host.toml` or `control plane (generation N)`.
    pub peers_from: String,
    /// Who this gateway streams to while it is master.
    pub stream_to: Vec<Ipv4Addr>,
    /// Not among the members the control plane assigned: nobody streams to it.
    pub spare: bool,
    /// Peer-set changes applied since start.
    pub peer_changes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--vpc` of `show nat-sessions`: a name this host knows, `routed`, or a VNI.
    #[test]
    fn a_nat_query_names_its_vpc_by_name_routed_or_vni() {
        let vpcs = [("blue", 100), ("7", 200)];
        let vni = |v: &str| {
            NatQuery {
                vpc: Some(v.to_string()),
                ip: None,
                protocol: None,
                limit: 10,
            }
            .vni(vpcs.iter().copied())
        };
        assert_eq!(vni("blue").unwrap(), Some(100));
        assert_eq!(vni("routed").unwrap(), Some(0));
        assert_eq!(vni("0").unwrap(), Some(0));
        assert_eq!(vni("300").unwrap(), Some(300), "any VNI");
        assert_eq!(vni("7").unwrap(), Some(200), "a VPC's name comes first");
        assert!(matches!(
            vni("green"),
            Err(super::super::backend::AdminError::NotFound { field: "vpc", .. })
        ));
        let all = NatQuery {
            vpc: None,
            ip: None,
            protocol: None,
            limit: 10,
        };
        assert_eq!(all.vni(vpcs.iter().copied()).unwrap(), None);
    }
}
