//! What a control-plane node is started with (from `aegis-controlplane`'s flags).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientConfig;

/// The cluster IP: an address the leader holds on a kernel interface.
#[derive(Debug, Clone)]
pub struct ClusterIpConfig {
    /// The interface (the management network's).
    pub interface: String,
    /// The address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// One node's configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node id, unique in the cluster, never reused.
    pub id: u64,
    /// gRPC listen address (API, agents, peers).
    pub listen: SocketAddr,
    /// The address other nodes and clients reach this node at (`ip:port`).
    pub advertise: String,
    /// Where the node keeps its database.
    pub data_dir: PathBuf,
    /// Nodes of an existing cluster to join through (empty: start or restart alone).
    pub join: Vec<String>,
    /// The cluster IP, if this node may hold it.
    pub cluster_ip: Option<ClusterIpConfig>,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout range.
    pub election_min: Duration,
    /// Raft election timeout range.
    pub election_max: Duration,
    /// Heartbeat silence after which a host is down.
    pub host_down_after: Duration,
    /// Changes kept for watchers.
    pub history: usize,
    /// A snapshot after this many log entries.
    pub snapshot_every: u64,
    /// Bearer token every caller must present.
    pub token: Option<String>,
    /// PEM certificate and key: serve TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// How this node reaches its peers (CA, token).
    pub peer_client: ClientConfig,
    /// Prometheus endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a write may wait for its commit.
    pub write_timeout: Duration,
}

impl NodeConfig {
    /// The lease a leader gets from one acknowledged heartbeat round: the minimum election
    /// timeout (followers refuse votes for the maximum one).
    pub fn lease(&self) -> Duration {
        self.election_min
    }
}
