//! What `aegisctl dp` prints with `--output json`, and what its tables are drawn from.
//!
//! These structs are the stable JSON schema (documented in `docs/cli.md`):
//! fields are only ever added. Enums are lower-case words ("gateway", "reachable"); absent
//! values are `null`, never empty strings.

use std::collections::BTreeMap;

use aegis_api::dataplane::v1 as pb;
use serde::Serialize;

/// `show status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Configuration revision.
    pub revision: u64,
    /// Seconds since the dataplane started.
    pub uptime_seconds: f64,
    /// aegis-dataplane version.
    pub version: String,
    /// "busy" or "adaptive".
    pub poll_mode: String,
    /// Workers in id order.
    pub workers: Vec<WorkerView>,
    /// The control-plane feed; `null` when the dataplane runs without one.
    pub controlplane: Option<ControlPlaneView>,
}

/// The control-plane feed of `show status`.
#[derive(Debug, Clone, Serialize)]
pub struct ControlPlaneView {
    /// Control-plane addresses.
    pub servers: String,
    /// The host followed.
    pub host: String,
    /// The watch stream is open.
    pub connected: bool,
    /// Control-plane revision the tables implement.
    pub applied_revision: u64,
    /// Why the latest revision could not be applied; `null` when it was.
    pub apply_error: Option<String>,
    /// Latest revision received.
    pub received_revision: u64,
    /// The tables come from the cached slice.
    pub from_cache: bool,
    /// Control-plane NAT objects left out for clashing with host.toml's `[nat]`.
    pub nat_conflicts: Vec<String>,
}

/// One worker of `show status`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    /// Worker id.
    pub id: u32,
    /// lcore it runs on.
    pub lcore: u32,
}

/// `show interfaces`.
#[derive(Debug, Clone, Serialize)]
pub struct InterfacesView {
    /// Ports in index order.
    pub interfaces: Vec<InterfaceView>,
}

/// One port.
#[derive(Debug, Clone, Serialize)]
pub struct InterfaceView {
    /// Port index.
    pub index: u32,
    /// Port name.
    pub name: String,
    /// DPDK devargs.
    pub devargs: String,
    /// MAC address.
    pub mac: String,
    /// IP MTU.
    pub mtu: u32,
    /// Administrative state.
    pub admin_up: bool,
    /// Link state.
    pub link_up: bool,
    /// Link speed, Mbit/s (0: down or unknown).
    pub link_speed_mbps: u32,
    /// Addresses, CIDR.
    pub addresses: Vec<String>,
    /// Counters.
    pub counters: CountersView,
    /// The control-plane (VM) port bound to it; `null` if none.
    pub endpoint: Option<String>,
}

/// Port counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CountersView {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Dropped by the NIC, rx queue full.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
}

/// `show runtime`.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeView {
    /// Per worker.
    pub workers: Vec<WorkerRuntimeView>,
    /// Per node, summed over workers.
    pub total: Vec<NodeView>,
}

/// One worker's loop and node statistics.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRuntimeView {
    /// Worker id.
    pub id: u32,
    /// lcore.
    pub lcore: u32,
    /// Poll rounds.
    pub polls: u64,
    /// Poll rounds that received nothing.
    pub idle_polls: u64,
    /// Sleeps (adaptive polling).
    pub sleeps: u64,
    /// Packets the dataplane consumed itself (ARP replies addressed to it).
    pub consumed: u64,
    /// ICMP errors sent.
    pub icmp_sent: u64,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_rate_limited: u64,
    /// Entries in the connection table.
    pub connections: u64,
    /// Entries the connection table holds at most.
    pub connection_capacity: u64,
    /// NAT sessions in the worker's table (0 without NAT).
    pub nat_sessions: u64,
    /// NAT sessions removed since start because their floating IP or source NAT rule was
    /// taken away.
    pub nat_sessions_revoked: u64,
    /// Nodes in graph order.
    pub nodes: Vec<NodeView>,
}

/// One node's dispatch statistics.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Dispatches.
    pub calls: u64,
    /// Packets.
    pub vectors: u64,
    /// TSC cycles.
    pub clocks: u64,
    /// vectors / calls.
    pub vectors_per_call: f64,
    /// clocks / vectors.
    pub clocks_per_packet: f64,
}

/// `show errors`: every reason, zeros included.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorsView {
    /// Per worker.
    pub workers: Vec<WorkerErrorsView>,
    /// Summed over workers.
    pub total: Vec<ErrorView>,
}

/// One worker's drop counters.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerErrorsView {
    /// Worker id.
    pub worker: u32,
    /// One per reason.
    pub counters: Vec<ErrorView>,
}

/// One drop counter.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    /// Reason name ("no_route").
    pub reason: String,
    /// What it means.
    pub description: String,
    /// Packets dropped.
    pub count: u64,
}

/// `show routes`.
#[derive(Debug, Clone, Serialize)]
pub struct RoutesView {
    /// Routes in prefix order.
    pub routes: Vec<RouteView>,
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// Prefix, CIDR.
    pub prefix: String,
    /// "local", "connected", "gateway", "blackhole" or "unreachable".
    pub kind: String,
    /// Gateway address, for "gateway".
    pub next_hop: Option<String>,
    /// Egress port.
    pub port: Option<String>,
    /// "static" or "connected".
    pub origin: String,
}

/// `show neighbours`.
#[derive(Debug, Clone, Serialize)]
pub struct NeighboursView {
    /// Entries.
    pub neighbours: Vec<NeighbourView>,
}

/// One neighbour.
#[derive(Debug, Clone, Serialize)]
pub struct NeighbourView {
    /// Port name.
    pub port: String,
    /// IPv4 address.
    pub ip: String,
    /// MAC, once resolved.
    pub mac: Option<String>,
    /// "incomplete", "reachable", "stale", "failed" or "static".
    pub state: String,
    /// Seconds since last change or confirmation.
    pub age_seconds: f64,
}

/// `show connections`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsView {
    /// Per worker (each has its own table), in worker order.
    pub workers: Vec<WorkerConnectionsView>,
}

/// One worker's connection table.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerConnectionsView {
    /// Worker id.
    pub worker: u32,
    /// Live connections in the table.
    pub entries: u64,
    /// Entries the table holds at most.
    pub capacity: u64,
    /// Connections matching the filter, those beyond the limit included.
    pub matched: u64,
    /// The matching connections shown.
    pub connections: Vec<ConnectionView>,
    /// Why the worker did not answer; `null` when it did.
    pub error: Option<String>,
}

/// One tracked connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// The dataplane port it is tracked on.
    pub port: String,
    /// The control-plane port bound to that port; `null` if none.
    pub endpoint: Option<String>,
    /// "tcp", "udp", "icmp", or the protocol number ("47").
    pub protocol: String,
    /// Originator address.
    pub src_ip: String,
    /// Originator port (ICMP echo: the identifier).
    pub src_port: u32,
    /// Responder address.
    pub dst_ip: String,
    /// Responder port (ICMP echo: the identifier).
    pub dst_port: u32,
    /// State name ("tcp_established").
    pub state: String,
    /// Seconds until it expires without packets.
    pub expires_seconds: f64,
    /// Packets in the original direction.
    pub packets_orig: u64,
    /// Packets in the reply direction.
    pub packets_reply: u64,
    /// Bytes in the original direction.
    pub bytes_orig: u64,
    /// Bytes in the reply direction.
    pub bytes_reply: u64,
}

/// `show nat-sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct NatSessionsView {
    /// Per worker (each has its own sessions), in worker order.
    pub workers: Vec<WorkerNatSessionsView>,
}

/// One worker's NAT sessions.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerNatSessionsView {
    /// Worker id.
    pub worker: u32,
    /// Whether it runs NAT.
    pub enabled: bool,
    /// Live sessions in its table.
    pub entries: u64,
    /// Sessions the table holds at most.
    pub capacity: u64,
    /// Sessions matching the filter, those beyond the limit included.
    pub matched: u64,
    /// The matching sessions shown.
    pub sessions: Vec<NatSessionView>,
    /// Why the worker did not answer; `null` when it did.
    pub error: Option<String>,
}

/// One NAT session.
#[derive(Debug, Clone, Serialize)]
pub struct NatSessionView {
    /// The VPC's name; `null` for the routed gateway or a VNI unknown here.
    pub vpc: Option<String>,
    /// The VPC's VNI (0: the routed gateway's inside).
    pub vni: u32,
    /// "tcp", "udp", "icmp", or the protocol number.
    pub protocol: String,
    /// Inside address.
    pub inside_ip: String,
    /// Inside port (ICMP echo: the identifier).
    pub inside_port: u32,
    /// Outside address it is translated to.
    pub outside_ip: String,
    /// Outside port.
    pub outside_port: u32,
    /// Remote address.
    pub remote_ip: String,
    /// Remote port (ICMP echo: 0).
    pub remote_port: u32,
    /// "snat", "snat-ei" or "floating-ip".
    pub kind: String,
    /// TCP: "opening", "established", "closing"; "-" otherwise.
    pub state: String,
    /// Seconds until it expires without packets.
    pub expires_seconds: f64,
}

impl From<pb::ShowNatSessionsReply> for NatSessionsView {
    fn from(r: pb::ShowNatSessionsReply) -> Self {
        NatSessionsView {
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerNatSessionsView {
                    worker: w.worker,
                    enabled: w.enabled,
                    entries: w.entries,
                    capacity: w.capacity,
                    matched: w.matched,
                    sessions: w
                        .sessions
                        .into_iter()
                        .map(|s| NatSessionView {
                            vpc: non_empty(s.vpc),
                            vni: s.vni,
                            protocol: protocol_name(s.protocol),
                            inside_ip: s.inside_ip,
                            inside_port: s.inside_port,
                            outside_ip: s.outside_ip,
                            outside_port: s.outside_port,
                            remote_ip: s.remote_ip,
                            remote_port: s.remote_port,
                            kind: s.kind,
                            state: s.state,
                            expires_seconds: s.expires_ms as f64 / 1000.0,
                        })
                        .collect(),
                    error: non_empty(w.error),
                })
                .collect(),
        }
    }
}

/// `show vpc`: the overlay as this host sees it.
#[derive(Debug, Clone, Serialize)]
pub struct VpcsView {
    /// Control-plane revision the overlay was built from (0: none).
    pub revision: u64,
    /// This host's underlay address; `null` when it takes no part in the overlay.
    pub underlay_ip: Option<String>,
    /// Largest inner IPv4 packet.
    pub mtu: u32,
    /// VPCs.
    pub vpcs: Vec<VpcView>,
}

/// One VPC.
#[derive(Debug, Clone, Serialize)]
pub struct VpcView {
    /// Name.
    pub name: String,
    /// Geneve VNI.
    pub vni: u32,
    /// Subnets.
    pub subnets: Vec<VpcSubnetView>,
    /// Static routes.
    pub routes: Vec<VpcRouteView>,
    /// Every port of the VPC.
    pub ports: Vec<VpcPortView>,
}

/// A subnet of a VPC.
#[derive(Debug, Clone, Serialize)]
pub struct VpcSubnetView {
    /// Name.
    pub name: String,
    /// CIDR.
    pub cidr: String,
    /// The distributed router's address in it.
    pub gateway: String,
}

/// A static route of a VPC.
#[derive(Debug, Clone, Serialize)]
pub struct VpcRouteView {
    /// CIDR.
    pub prefix: String,
    /// "port", "next_hop_unknown", "blackhole" or "unreachable".
    pub kind: String,
    /// The next-hop port, for "port".
    pub port: Option<String>,
}

/// A port of a VPC.
#[derive(Debug, Clone, Serialize)]
pub struct VpcPortView {
    /// Control-plane name.
    pub name: String,
    /// Subnet name.
    pub subnet: String,
    /// MAC.
    pub mac: String,
    /// Addresses.
    pub ips: Vec<String>,
    /// "local", "remote" or "unplaced".
    pub location: String,
    /// The dataplane port, for "local".
    pub device: Option<String>,
    /// Its host's underlay address, for "remote".
    pub host_ip: Option<String>,
}

/// `show security-denials`: every counter, zeros included.
#[derive(Debug, Clone, Serialize)]
pub struct DenialsView {
    /// In counter order.
    pub denials: Vec<DenialView>,
}

/// One denial counter.
#[derive(Debug, Clone, Serialize)]
pub struct DenialView {
    /// "GROUP/RULE_ID", "default/ingress-deny" or "other".
    pub rule: String,
    /// Packets denied (all workers).
    pub count: u64,
}

/// `show vrrp`.
#[derive(Debug, Clone, Serialize)]
pub struct VrrpView {
    /// In configuration order.
    pub instances: Vec<VrrpInstanceView>,
    /// Frames refused before any instance saw them, and speaker-side failures.
    pub rx_errors: BTreeMap<String, u64>,
    /// Why the control plane's gateway group does not run on this host as declared.
    pub problems: Vec<String>,
}

/// One VRRP instance.
#[derive(Debug, Clone, Serialize)]
pub struct VrrpInstanceView {
    /// Instance name.
    pub name: String,
    /// Dataplane port.
    pub port: String,
    /// Virtual router id.
    pub vrid: u32,
    /// 2 or 3.
    pub version: u32,
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    /// Configured priority.
    pub priority: u32,
    /// Priority in force (tracking applied).
    pub effective_priority: u32,
    /// Advertisement interval, milliseconds.
    pub interval_ms: u32,
    /// Preemption on.
    pub preempt: bool,
    /// Virtual addresses (CIDR).
    pub addresses: Vec<String>,
    /// The master's address, when known.
    pub master: Option<String>,
    /// The master's priority.
    pub master_priority: u32,
    /// Milliseconds in the current state.
    pub in_state_ms: u64,
    /// Why it entered it.
    pub last_cause: String,
    /// State changes.
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
    /// Advertisements not acted on, per reason.
    pub discards: BTreeMap<String, u64>,
    /// Sync group.
    pub sync_group: Option<String>,
    /// Where it is configured: `keepalived.conf` or `gateway-group NAME`.
    pub source: String,
    /// Unicast peers (empty: the 224.0.0.18 group).
    pub peers: Vec<String>,
}

/// `show sync` (`configured: false` and nothing else when the host has no `[sync]`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncView {
    /// The host runs session sync.
    pub configured: bool,
    /// `master` or `backup`.
    pub role: String,
    /// Gateway group id.
    pub group: u32,
    /// Our sync address.
    pub address: String,
    /// UDP port.
    pub udp_port: u32,
    /// The VRRP instance that decides the role.
    pub vrrp_instance: String,
    /// Milliseconds in the current role.
    pub in_role_ms: u64,
    /// Role changes since start.
    pub role_changes: u64,
    /// Sessions known (own as master, the replica as backup).
    pub sessions: u64,
    /// Replica complete (backup); always true on a master.
    pub synced: bool,
    /// Backup: the master heard.
    pub master: Option<String>,
    /// Master: per peer.
    pub peers: Vec<SyncPeerView>,
    /// Backup: datagrams applied in order.
    pub applied: u64,
    /// Backup: events applied.
    pub events_applied: u64,
    /// Backup: duplicate datagrams.
    pub duplicates: u64,
    /// Backup: datagrams that arrived early.
    pub out_of_order: u64,
    /// Backup: bulk resyncs completed.
    pub bulk_completed: u64,
    /// Backup: resync requests sent.
    pub resync_requests: u64,
    /// Installs handed to the NAT worker.
    pub installs_pushed: u64,
    /// Installs the worker applied.
    pub installs_done: u64,
    /// Installs the worker refused.
    pub installs_failed: u64,
    /// Events the worker could not queue.
    pub events_lost: u64,
    /// Datagrams sent.
    pub tx_datagrams: u64,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Datagrams not sent, peer unresolved.
    pub tx_unresolved: u64,
    /// Datagrams not sent, queue full.
    pub tx_queue_full: u64,
    /// Datagrams from no peer.
    pub rx_unknown_peer: u64,
    /// Datagrams refused, per reason.
    pub rejected: BTreeMap<String, u64>,
    /// Last takeover: sessions committed before claiming.
    pub last_commit_sessions: Option<u64>,
    /// Last takeover: microseconds waited for the worker.
    pub last_commit_us: Option<u64>,
    /// Where the peers come from: `host.toml` or `control plane (generation N)`.
    pub peers_from: String,
    /// Who it streams to while master.
    pub stream_to: Vec<String>,
    /// Not among the control plane's assigned sync members.
    pub spare: bool,
    /// Peer-set changes applied since start.
    pub peer_changes: u64,
}

/// One peer of the master's stream.
#[derive(Debug, Clone, Serialize)]
pub struct SyncPeerView {
    /// Its address.
    pub address: String,
    /// Events not acknowledged.
    pub lag: u64,
    /// Age of the oldest unacknowledged datagram, ms.
    pub oldest_unacked_ms: u64,
    /// Events queued for it.
    pub events: u64,
    /// Datagrams sent once.
    pub datagrams: u64,
    /// Datagrams resent.
    pub resends: u64,
    /// Acks accepted.
    pub acks: u64,
    /// Bulk resyncs.
    pub bulk_resyncs: u64,
    /// Sessions sent in bulk.
    pub bulk_sessions: u64,
}

impl From<pb::ShowSyncReply> for SyncView {
    fn from(r: pb::ShowSyncReply) -> Self {
        if !r.configured {
            return SyncView::default();
        }
        SyncView {
            configured: true,
            role: r.role,
            group: r.group,
            address: r.address,
            udp_port: r.udp_port,
            vrrp_instance: r.vrrp_instance,
            in_role_ms: r.in_role_ms,
            role_changes: r.role_changes,
            peers_from: r.peers_from,
            stream_to: r.stream_to,
            spare: r.spare,
            peer_changes: r.peer_changes,
            sessions: r.sessions,
            synced: r.synced,
            master: non_empty(r.master),
            peers: r
                .peers
                .into_iter()
                .map(|p| SyncPeerView {
                    address: p.address,
                    lag: p.lag,
                    oldest_unacked_ms: p.oldest_unacked_ms,
                    events: p.events,
                    datagrams: p.datagrams,
                    resends: p.resends,
                    acks: p.acks,
                    bulk_resyncs: p.bulk_resyncs,
                    bulk_sessions: p.bulk_sessions,
                })
                .collect(),
            applied: r.applied,
            events_applied: r.events_applied,
            duplicates: r.duplicates,
            out_of_order: r.out_of_order,
            bulk_completed: r.bulk_completed,
            resync_requests: r.resync_requests,
            installs_pushed: r.installs_pushed,
            installs_done: r.installs_done,
            installs_failed: r.installs_failed,
            events_lost: r.events_lost,
            tx_datagrams: r.tx_datagrams,
            rx_datagrams: r.rx_datagrams,
            tx_unresolved: r.tx_unresolved,
            tx_queue_full: r.tx_queue_full,
            rx_unknown_peer: r.rx_unknown_peer,
            rejected: r.rejected.into_iter().map(|n| (n.name, n.count)).collect(),
            last_commit_sessions: r.has_last_commit.then_some(r.last_commit_sessions),
            last_commit_us: r.has_last_commit.then_some(r.last_commit_us),
        }
    }
}

/// Any mutation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MutationView {
    /// Configuration revision after the change.
    pub revision: u64,
}

/// A protobuf enum value as a lower-case word: its name without the type prefix
/// ("ROUTE_KIND_GATEWAY" → "gateway"); "unknown(N)" for values this client does not know.
fn enum_word(name: Option<&str>, prefix: &str, value: i32) -> String {
    match name {
        Some(n) => n.strip_prefix(prefix).unwrap_or(n).to_ascii_lowercase(),
        None => format!("unknown({value})"),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<pb::GetStatusReply> for StatusView {
    fn from(r: pb::GetStatusReply) -> Self {
        let mode = pb::PollMode::try_from(r.poll_mode).ok();
        StatusView {
            revision: r.revision,
            uptime_seconds: r.uptime_seconds,
            version: r.version,
            poll_mode: enum_word(mode.map(|m| m.as_str_name()), "POLL_MODE_", r.poll_mode),
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerView {
                    id: w.id,
                    lcore: w.lcore,
                })
                .collect(),
            controlplane: r.controlplane.map(|c| ControlPlaneView {
                servers: c.servers,
                host: c.host,
                connected: c.connected,
                applied_revision: c.applied_revision,
                apply_error: non_empty(c.apply_error),
                received_revision: c.received_revision,
                from_cache: c.from_cache,
                nat_conflicts: c.nat_conflicts,
            }),
        }
    }
}

impl From<pb::ShowInterfacesReply> for InterfacesView {
    fn from(r: pb::ShowInterfacesReply) -> Self {
        InterfacesView {
            interfaces: r
                .interfaces
                .into_iter()
                .map(|i| {
                    let c = i.counters.unwrap_or_default();
                    InterfaceView {
                        index: i.index,
                        name: i.name,
                        devargs: i.devargs,
                        mac: i.mac,
                        mtu: i.mtu,
                        admin_up: i.admin_up,
                        link_up: i.link_up,
                        link_speed_mbps: i.link_speed_mbps,
                        addresses: i.addresses,
                        counters: CountersView {
                            rx_packets: c.rx_packets,
                            rx_bytes: c.rx_bytes,
                            tx_packets: c.tx_packets,
                            tx_bytes: c.tx_bytes,
                            rx_missed: c.rx_missed,
                            rx_errors: c.rx_errors,
                            tx_errors: c.tx_errors,
                            rx_nombuf: c.rx_nombuf,
                        },
                        endpoint: non_empty(i.endpoint),
                    }
                })
                .collect(),
        }
    }
}

impl From<pb::NodeRuntime> for NodeView {
    fn from(n: pb::NodeRuntime) -> Self {
        NodeView {
            name: n.name,
            calls: n.calls,
            vectors: n.vectors,
            clocks: n.clocks,
            vectors_per_call: n.vectors_per_call,
            clocks_per_packet: n.clocks_per_packet,
        }
    }
}

impl From<pb::ShowRuntimeReply> for RuntimeView {
    fn from(r: pb::ShowRuntimeReply) -> Self {
        RuntimeView {
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerRuntimeView {
                    id: w.id,
                    lcore: w.lcore,
                    polls: w.polls,
                    idle_polls: w.idle_polls,
                    sleeps: w.sleeps,
                    consumed: w.consumed,
                    icmp_sent: w.icmp_sent,
                    icmp_rate_limited: w.icmp_rate_limited,
                    connections: w.connections,
                    connection_capacity: w.connection_capacity,
                    nat_sessions: w.nat_sessions,
                    nat_sessions_revoked: w.nat_sessions_revoked,
                    nodes: w.nodes.into_iter().map(NodeView::from).collect(),
                })
                .collect(),
            total: r.total.into_iter().map(NodeView::from).collect(),
        }
    }
}

impl From<pb::ErrorCounter> for ErrorView {
    fn from(c: pb::ErrorCounter) -> Self {
        ErrorView {
            reason: c.reason,
            description: c.description,
            count: c.count,
        }
    }
}

impl From<pb::ShowErrorsReply> for ErrorsView {
    fn from(r: pb::ShowErrorsReply) -> Self {
        ErrorsView {
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerErrorsView {
                    worker: w.worker,
                    counters: w.counters.into_iter().map(ErrorView::from).collect(),
                })
                .collect(),
            total: r.total.into_iter().map(ErrorView::from).collect(),
        }
    }
}

impl From<pb::ShowRoutesReply> for RoutesView {
    fn from(r: pb::ShowRoutesReply) -> Self {
        RoutesView {
            routes: r
                .routes
                .into_iter()
                .map(|r| {
                    let kind = pb::RouteKind::try_from(r.kind).ok();
                    let origin = pb::RouteOrigin::try_from(r.origin).ok();
                    RouteView {
                        prefix: r.prefix,
                        kind: enum_word(kind.map(|k| k.as_str_name()), "ROUTE_KIND_", r.kind),
                        next_hop: non_empty(r.next_hop),
                        port: non_empty(r.port),
                        origin: enum_word(
                            origin.map(|o| o.as_str_name()),
                            "ROUTE_ORIGIN_",
                            r.origin,
                        ),
                    }
                })
                .collect(),
        }
    }
}

impl From<pb::ShowNeighboursReply> for NeighboursView {
    fn from(r: pb::ShowNeighboursReply) -> Self {
        NeighboursView {
            neighbours: r
                .neighbours
                .into_iter()
                .map(|n| {
                    let state = pb::NeighbourState::try_from(n.state).ok();
                    NeighbourView {
                        port: n.port,
                        ip: n.ip,
                        mac: non_empty(n.mac),
                        state: enum_word(
                            state.map(|s| s.as_str_name()),
                            "NEIGHBOUR_STATE_",
                            n.state,
                        ),
                        age_seconds: n.age_seconds,
                    }
                })
                .collect(),
        }
    }
}

/// An IP protocol number as `show connections` names it.
pub fn protocol_name(p: u32) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        n => n.to_string(),
    }
}

impl From<pb::Connection> for ConnectionView {
    fn from(c: pb::Connection) -> Self {
        ConnectionView {
            port: c.port,
            endpoint: non_empty(c.endpoint),
            protocol: protocol_name(c.protocol),
            src_ip: c.src_ip,
            src_port: c.src_port,
            dst_ip: c.dst_ip,
            dst_port: c.dst_port,
            state: c.state,
            expires_seconds: c.expires_seconds,
            packets_orig: c.packets_orig,
            packets_reply: c.packets_reply,
            bytes_orig: c.bytes_orig,
            bytes_reply: c.bytes_reply,
        }
    }
}

impl From<pb::ShowConnectionsReply> for ConnectionsView {
    fn from(r: pb::ShowConnectionsReply) -> Self {
        ConnectionsView {
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerConnectionsView {
                    worker: w.worker,
                    entries: w.entries,
                    capacity: w.capacity,
                    matched: w.matched,
                    connections: w
                        .connections
                        .into_iter()
                        .map(ConnectionView::from)
                        .collect(),
                    error: non_empty(w.error),
                })
                .collect(),
        }
    }
}

impl From<pb::ShowVpcsReply> for VpcsView {
    fn from(r: pb::ShowVpcsReply) -> Self {
        VpcsView {
            revision: r.revision,
            underlay_ip: non_empty(r.underlay_ip),
            mtu: r.mtu,
            vpcs: r.vpcs.into_iter().map(VpcView::from).collect(),
        }
    }
}

impl From<pb::Vpc> for VpcView {
    fn from(v: pb::Vpc) -> Self {
        VpcView {
            name: v.name,
            vni: v.vni,
            subnets: v
                .subnets
                .into_iter()
                .map(|s| VpcSubnetView {
                    name: s.name,
                    cidr: s.cidr,
                    gateway: s.gateway,
                })
                .collect(),
            routes: v
                .routes
                .into_iter()
                .map(|r| {
                    let kind = pb::VpcRouteKind::try_from(r.kind).ok();
                    VpcRouteView {
                        prefix: r.prefix,
                        kind: enum_word(kind.map(|k| k.as_str_name()), "VPC_ROUTE_KIND_", r.kind),
                        port: non_empty(r.port),
                    }
                })
                .collect(),
            ports: v
                .ports
                .into_iter()
                .map(|p| {
                    let location = pb::PortLocation::try_from(p.location).ok();
                    VpcPortView {
                        name: p.name,
                        subnet: p.subnet,
                        mac: p.mac,
                        ips: p.ips,
                        location: enum_word(
                            location.map(|l| l.as_str_name()),
                            "PORT_LOCATION_",
                            p.location,
                        ),
                        device: non_empty(p.device),
                        host_ip: non_empty(p.host_ip),
                    }
                })
                .collect(),
        }
    }
}

impl From<pb::ShowSecurityDenialsReply> for DenialsView {
    fn from(r: pb::ShowSecurityDenialsReply) -> Self {
        DenialsView {
            denials: r
                .denials
                .into_iter()
                .map(|d| DenialView {
                    rule: d.rule,
                    count: d.count,
                })
                .collect(),
        }
    }
}

impl From<pb::ShowVrrpReply> for VrrpView {
    fn from(r: pb::ShowVrrpReply) -> Self {
        let named = |v: Vec<pb::NamedCount>| v.into_iter().map(|n| (n.name, n.count)).collect();
        VrrpView {
            instances: r
                .instances
                .into_iter()
                .map(|i| VrrpInstanceView {
                    name: i.name,
                    port: i.port,
                    vrid: i.vrid,
                    version: i.version,
                    state: i.state,
                    priority: i.priority,
                    effective_priority: i.effective_priority,
                    interval_ms: i.interval_ms,
                    preempt: i.preempt,
                    addresses: i.addresses,
                    master: non_empty(i.master),
                    master_priority: i.master_priority,
                    in_state_ms: i.in_state_ms,
                    last_cause: i.last_cause,
                    transitions: i.transitions,
                    became_master: i.became_master,
                    adverts_rx: i.adverts_rx,
                    adverts_tx: i.adverts_tx,
                    priority_zero_rx: i.priority_zero_rx,
                    priority_zero_tx: i.priority_zero_tx,
                    discards: named(i.discards),
                    sync_group: non_empty(i.sync_group),
                    source: i.source,
                    peers: i.peers,
                })
                .collect(),
            rx_errors: named(r.rx_errors),
            problems: r.problems,
        }
    }
}

impl From<pb::MutationReply> for MutationView {
    fn from(r: pb::MutationReply) -> Self {
        MutationView {
            revision: r.revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_words() {
        let r = RoutesView::from(pb::ShowRoutesReply {
            routes: vec![
                pb::Route {
                    prefix: "10.0.0.0/8".into(),
                    kind: pb::RouteKind::Gateway as i32,
                    next_hop: "10.0.1.2".into(),
                    port: String::new(),
                    origin: pb::RouteOrigin::Static as i32,
                },
                pb::Route {
                    kind: 42,
                    ..pb::Route::default()
                },
            ],
        });
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["routes"][0]["kind"], "gateway");
        assert_eq!(json["routes"][0]["origin"], "static");
        assert_eq!(json["routes"][0]["next_hop"], "10.0.1.2");
        assert!(json["routes"][0]["port"].is_null());
        assert_eq!(json["routes"][1]["kind"], "unknown(42)");
        assert_eq!(json["routes"][1]["origin"], "unspecified");
    }
}
