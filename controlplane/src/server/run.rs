//! Start-up and shutdown of a node: open the database, start Raft, serve gRPC (with TLS and
//! the token check when configured), form or join the cluster, hold the cluster IP while
//! leading, serve metrics, and stop cleanly (releasing the cluster IP) when `stop` fires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    agents_server::AgentsServer, cluster_server::ClusterServer,
    desired_state_server::DesiredStateServer, diagnostics_server::DiagnosticsServer,
    raft_peer_server::RaftPeerServer, JoinRequest,
};
use openraft::{BasicNode, SnapshotPolicy};
use tokio::sync::{watch, Notify};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use super::agents::AgentsService;
use super::api::DesiredStateService;
use super::auth::TokenCheck;
use super::cluster::ClusterService;
use super::config::NodeConfig;
use super::diagnostics::DiagnosticsService;
use super::leader::{confirm_leadership, hold_cluster_ip};
use super::node::Node;
use super::peer::PeerService;
use crate::client::clients;
use crate::raft::types::Raft;
use crate::raft::{LogStore, StateMachine};
use crate::vip::ClusterIp;

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data directory or database could not be opened.
    #[error("database in {dir}: {message}")]
    Storage {
        /// The data directory.
        dir: String,
        /// What failed.
        message: String,
    },
    /// Raft could not start.
    #[error("raft: {0}")]
    Raft(String),
    /// The gRPC server failed.
    #[error("gRPC server on {addr}: {message}")]
    Serve {
        /// The listen address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// Runs a node until `stop` becomes true.
pub async fn run(config: NodeConfig, mut stop: watch::Receiver<bool>) -> Result<(), RunError> {
    let config = Arc::new(config);
    let storage = |message: String| RunError::Storage {
        dir: config.data_dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| storage(e.to_string()))?;
    let db = LogStore::open_database(&config.data_dir.join("controlplane.redb"))
        .map_err(|e| storage(e.to_string()))?;
    let log = LogStore::open(db.clone()).map_err(|e| storage(e.to_string()))?;
    let (sm, machine) =
        StateMachine::open(db, config.history).map_err(|e| storage(e.to_string()))?;

    let raft_config = openraft::Config {
        cluster_name: "aegis".into(),
        heartbeat_interval: ms(config.heartbeat),
        election_timeout_min: ms(config.election_min),
        election_timeout_max: ms(config.election_max),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.snapshot_every.min(1000),
        ..Default::default()
    }
    .validate()
    .map_err(|e| RunError::Raft(e.to_string()))?;
    let network = crate::raft::network::Network::new(config.peer_client.clone());
    let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;
    let node = Arc::new(Node::new(config.clone(), raft.clone(), machine));

    // gRPC.
    let check = TokenCheck::new(config.token.as_deref());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(aegis_api::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| RunError::Serve {
            addr: config.listen.to_string(),
            message: e.to_string(),
        })?;
    let mut builder = Server::builder();
    if let Some((cert, key)) = &config.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| RunError::Serve {
                addr: config.listen.to_string(),
                message: format!("TLS: {e}"),
            })?;
    }
    let router = builder
        .add_service(InterceptedService::new(
            DesiredStateServer::new(DesiredStateService::new(node.clone())),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            AgentsServer::new(AgentsService::new(node.clone())),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            ClusterServer::new(ClusterService::new(node.clone())),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            DiagnosticsServer::new(DiagnosticsService::new(node.clone())),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            RaftPeerServer::new(PeerService::new(node.clone()))
                .max_decoding_message_size(256 << 20),
            check,
        ))
        .add_service(reflection);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| RunError::Serve {
            addr: config.listen.to_string(),
            message: e.to_string(),
        })?;
    let mut server_stop = stop.clone();
    let server = tokio::spawn(router.serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));
    tracing::info!(id = config.id, listen = %config.listen, advertise = %config.advertise, "control-plane node serving");

    // Form or join the cluster.
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;
    if !initialized {
        if config.join.is_empty() {
            let members = BTreeMap::from([(config.id, BasicNode::new(&config.advertise))]);
            raft.initialize(members)
                .await
                .map_err(|e| RunError::Raft(e.to_string()))?;
            tracing::info!(id = config.id, "formed a new single-node cluster");
        } else {
            tokio::spawn(join_cluster(config.clone(), stop.clone()));
        }
    }

    // Leadership, cluster IP, metrics.
    let changed = Arc::new(Notify::new());
    tokio::spawn(confirm_leadership(
        node.clone(),
        changed.clone(),
        stop.clone(),
    ));
    tokio::spawn(super::reselect::reselect_standbys(
        node.clone(),
        stop.clone(),
    ));
    let holder = config.cluster_ip.as_ref().map(|c| {
        let vip = ClusterIp::new(c.interface.clone(), c.address, c.prefix_len);
        tokio::spawn(hold_cluster_ip(
            node.clone(),
            vip,
            changed.clone(),
            stop.clone(),
        ))
    });
    if let Some(addr) = config.metrics_listen {
        let node = node.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = super::metrics::serve(node, addr, stop).await {
                tracing::error!(error = %e, %addr, "metrics endpoint failed");
            }
        });
    }

    let _ = stop.wait_for(|s| *s).await;
    tracing::info!("stopping");
    if let Some(h) = holder {
        let _ = tokio::time::timeout(Duration::from_secs(3), h).await;
    }
    // Clients holding connections open would keep the server (and through it the node and
    // its database) alive: give them a moment, then cut them.
    let abort = server.abort_handle();
    let served = tokio::time::timeout(Duration::from_secs(2), server).await;
    if served.is_err() {
        abort.abort();
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }

    match served {
        Ok(Ok(Err(e))) => Err(RunError::Serve {
            addr: config.listen.to_string(),
            message: e.to_string(),
        }),
        _ => Ok(()),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Asks the cluster (through any of `config.join`) to add this node, until it succeeds.
async fn join_cluster(config: Arc<NodeConfig>, stop: watch::Receiver<bool>) {
    let mut delay = Duration::from_millis(200);
    loop {
        for addr in &config.join {
            let Ok(mut c) = clients(addr, &config.peer_client) else {
                tracing::error!(%addr, "bad --join address");
                continue;
            };
            let req = JoinRequest {
                node_id: config.id,
                address: config.advertise.clone(),
            };
            match c.cluster.join(req).await {
                Ok(r) => {
                    tracing::info!(via = %addr, members = r.into_inner().members.len(), "joined the cluster");
                    return;
                }
                Err(s) => {
                    tracing::warn!(via = %addr, error = %s.message(), "join failed; retrying")
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}
