//! Connections to control-plane nodes for `aegisctl` and the nodes themselves (Raft peers,
//! forwarded writes): one address, optional TLS (rustls) with a CA certificate and server
//! name, and the bearer token — built by the agents' connection code
//! (`aegis_agent::connect`), so every client connects the same way.

use std::path::PathBuf;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    agents_client::AgentsClient, cluster_client::ClusterClient,
    desired_state_client::DesiredStateClient, diagnostics_client::DiagnosticsClient,
    raft_peer_client::RaftPeerClient,
};

/// How to reach and authenticate to control-plane nodes.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// PEM CA certificate: connect with TLS and verify the server against it.
    pub tls_ca: Option<Vec<u8>>,
    /// Server name to verify (default: the host part of the address).
    pub tls_domain: Option<String>,
    /// Bearer token sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Connect timeout (default 2 s).
    pub connect_timeout: Option<Duration>,
}

impl ClientConfig {
    /// Loads the CA file, if any.
    pub fn with_ca_file(mut self, path: Option<&PathBuf>) -> Result<Self, ClientError> {
        if let Some(path) = path {
            self.tls_ca = Some(std::fs::read(path).map_err(|e| ClientError::Ca {
                path: path.clone(),
                source: e,
            })?);
        }
        Ok(self)
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `host:port` or a URL.
    #[error("bad control-plane address {addr:?}: {reason}")]
    Address {
        /// The address given.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The CA file could not be read.
    #[error("cannot read the CA certificate {path}: {source}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token cannot be sent as a header.
    #[error("the token contains characters that cannot be sent in a header")]
    Token,
}

/// A channel that adds the token (the agents' type: one way to connect for every client).
pub type AuthChannel = aegis_agent::connect::AuthChannel;

/// The clients of one node.
#[derive(Clone)]
pub struct Clients {
    /// Desired state.
    pub state: DesiredStateClient<AuthChannel>,
    /// Agents.
    pub agents: AgentsClient<AuthChannel>,
    /// Cluster.
    pub cluster: ClusterClient<AuthChannel>,
    /// Peer (Raft, forwarded writes).
    pub peer: RaftPeerClient<AuthChannel>,
    /// Diagnostics of the hosts' dataplanes.
    pub diagnostics: DiagnosticsClient<AuthChannel>,
}

/// A lazily connecting channel to `addr` (`host:port`, `http://host:port` or
/// `https://host:port`; TLS when a CA is configured or the scheme is https).
pub fn channel(addr: &str, config: &ClientConfig) -> Result<AuthChannel, ClientError> {
    let connect = aegis_agent::connect::ConnectConfig {
        addresses: vec![addr.to_owned()],
        ca: config.tls_ca.clone(),
        token: config.token.clone(),
        connect_timeout: config.connect_timeout.unwrap_or(Duration::from_secs(2)),
        tls_domain: config.tls_domain.clone(),
    };
    connect.lazy_channel(addr).map_err(|e| match e {
        aegis_agent::connect::ConnectError::Token => ClientError::Token,
        e => ClientError::Address {
            addr: addr.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// Every client of the node at `addr`, sharing one channel.
pub fn clients(addr: &str, config: &ClientConfig) -> Result<Clients, ClientError> {
    let ch = channel(addr, config)?;
    Ok(Clients {
        state: DesiredStateClient::new(ch.clone()),
        agents: AgentsClient::new(ch.clone()),
        cluster: ClusterClient::new(ch.clone()),
        peer: RaftPeerClient::new(ch.clone()),
        diagnostics: DiagnosticsClient::new(ch),
    })
}
