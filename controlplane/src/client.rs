//! Connections to control-plane nodes, shared by `aegisctl`, the agents and the nodes
//! themselves (Raft peers, forwarded writes): endpoint syntax, optional TLS (rustls) with a
//! CA certificate, and the bearer token sent with every call.

use std::path::PathBuf;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    agents_client::AgentsClient, cluster_client::ClusterClient,
    desired_state_client::DesiredStateClient, raft_peer_client::RaftPeerClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

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

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that adds the token.
pub type AuthChannel = InterceptedService<Channel, Auth>;

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
}

/// A lazily connecting channel to `addr` (`host:port`, `http://host:port` or
/// `https://host:port`; TLS when a CA is configured or the scheme is https).
pub fn channel(addr: &str, config: &ClientConfig) -> Result<AuthChannel, ClientError> {
    let tls = config.tls_ca.is_some() || addr.starts_with("https://");
    let url = if addr.contains("://") {
        addr.to_owned()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let bad = |reason: String| ClientError::Address {
        addr: addr.to_owned(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(url).map_err(|e| bad(e.to_string()))?;
    endpoint = endpoint
        .connect_timeout(config.connect_timeout.unwrap_or(Duration::from_secs(2)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    if tls {
        let mut tls_config = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &config.tls_ca {
            tls_config = tls_config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some(domain) = &config.tls_domain {
            tls_config = tls_config.domain_name(domain.clone());
        }
        endpoint = endpoint
            .tls_config(tls_config)
            .map_err(|e| bad(e.to_string()))?;
    }
    let token = match &config.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| ClientError::Token)?,
        ),
        None => None,
    };
    Ok(InterceptedService::new(
        endpoint.connect_lazy(),
        Auth(token),
    ))
}

/// Every client of the node at `addr`, sharing one channel.
pub fn clients(addr: &str, config: &ClientConfig) -> Result<Clients, ClientError> {
    let ch = channel(addr, config)?;
    Ok(Clients {
        state: DesiredStateClient::new(ch.clone()),
        agents: AgentsClient::new(ch.clone()),
        cluster: ClusterClient::new(ch.clone()),
        peer: RaftPeerClient::new(ch),
    })
}
