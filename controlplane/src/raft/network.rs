//! The Raft network: openraft's RPCs to other nodes over gRPC (`RaftPeer`), each message
//! JSON-encoded in a `RaftMessage`. Snapshots are small (the desired state) and go in one
//! message.

use std::future::Future;

use aegis_api::controlplane::v1::{raft_peer_client::RaftPeerClient, RaftMessage};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Snapshot, Vote};
use serde::{Deserialize, Serialize};

use super::types::{NodeId, TypeConfig};
use crate::client::{channel, AuthChannel, ClientConfig};

/// A full snapshot as sent to a follower.
#[derive(Serialize, Deserialize)]
pub struct SnapshotMessage {
    /// The leader's vote.
    pub vote: Vote<NodeId>,
    /// Snapshot metadata.
    pub meta: openraft::SnapshotMeta<NodeId, BasicNode>,
    /// The serialized state.
    pub data: Vec<u8>,
}

/// Makes a client per peer.
#[derive(Clone)]
pub struct Network {
    config: ClientConfig,
}

impl Network {
    /// Peers are reached with `config` (TLS, token).
    pub fn new(config: ClientConfig) -> Self {
        Self { config }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            client: channel(&node.addr, &self.config)
                .map(RaftPeerClient::new)
                .map_err(|e| e.to_string()),
        }
    }
}

/// One peer.
pub struct PeerClient {
    target: NodeId,
    client: Result<RaftPeerClient<AuthChannel>, String>,
}

/// A transport error as openraft's "unreachable" (back off) or "network" (retry).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl PeerClient {
    async fn call<Req, Resp, F, Fut>(
        &mut self,
        req: &Req,
        ttl: std::time::Duration,
        f: F,
    ) -> Result<Resp, RpcFailure>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        F: FnOnce(RaftPeerClient<AuthChannel>, RaftMessage) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RpcFailure::Unreachable(Transport(e.clone()))),
        };
        let data =
            serde_json::to_vec(req).map_err(|e| RpcFailure::Network(Transport(e.to_string())))?;
        let resp = match tokio::time::timeout(ttl, f(client, RaftMessage { data })).await {
            Err(_) => {
                return Err(RpcFailure::Network(Transport(format!(
                    "no answer from node {} in {ttl:?}",
                    self.target
                ))))
            }
            Ok(Err(status)) => {
                let t = Transport(format!("node {}: {}", self.target, status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                        RpcFailure::Unreachable(t)
                    }
                    _ => RpcFailure::Network(t),
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        serde_json::from_slice(&resp.data).map_err(|e| {
            RpcFailure::Network(Transport(format!(
                "bad answer from node {}: {e}",
                self.target
            )))
        })
    }
}

enum RpcFailure {
    Unreachable(Transport),
    Network(Transport),
}

impl RpcFailure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            Self::Unreachable(t) => RPCError::Unreachable(Unreachable::new(&t)),
            Self::Network(t) => RPCError::Network(NetworkError::new(&t)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let target = self.target;
        let r: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> = self
            .call(&rpc, option.hard_ttl(), |mut c, m| async move {
                c.append_entries(m).await
            })
            .await
            .map_err(RpcFailure::into_rpc)?;
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        // Snapshots go whole through `full_snapshot`; openraft does not call this with
        // `generic-snapshot-data`.
        Err(RPCError::Network(NetworkError::new(&Transport(
            "chunked snapshots are not used; full_snapshot is".into(),
        ))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let target = self.target;
        let r: Result<VoteResponse<NodeId>, RaftError<NodeId>> = self
            .call(&rpc, option.hard_ttl(), |mut c, m| async move {
                c.vote(m).await
            })
            .await
            .map_err(RpcFailure::into_rpc)?;
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let target = self.target;
        let msg = SnapshotMessage {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let r: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> = self
            .call(&msg, option.hard_ttl(), |mut c, m| async move {
                c.snapshot(m).await
            })
            .await
            .map_err(|f| match f {
                RpcFailure::Unreachable(t) => StreamingError::Unreachable(Unreachable::new(&t)),
                RpcFailure::Network(t) => StreamingError::Network(NetworkError::new(&t)),
            })?;
        r.map_err(|e| StreamingError::RemoteError(RemoteError::new(target, e)))
    }
}
