//! The `RaftPeer` service: openraft's RPCs from other nodes, and writes forwarded by
//! followers.

use std::io::Cursor;
use std::sync::Arc;

use aegis_api::controlplane::v1::{raft_peer_server::RaftPeer, RaftMessage};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Snapshot;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::node::{ForwardedResult, Node};
use crate::model::Command;
use crate::raft::network::SnapshotMessage;
use crate::raft::types::{NodeId, TypeConfig};

/// The service, on one node.
pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    /// Serves `node`'s Raft instance.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn decode<T: serde::de::DeserializeOwned>(m: RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&m.data)
        .map_err(|e| Status::invalid_argument(format!("bad peer message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    serde_json::to_vec(v)
        .map(|data| Response::new(RaftMessage { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.into_inner())?;
        encode(&self.node.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(req.into_inner())?;
        encode(&self.node.raft.vote(rpc).await)
    }

    async fn snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg: SnapshotMessage = decode(req.into_inner())?;
        let snapshot = Snapshot::<TypeConfig> {
            meta: msg.meta,
            snapshot: Box::new(Cursor::new(msg.data)),
        };
        encode(
            &self
                .node
                .raft
                .install_full_snapshot(msg.vote, snapshot)
                .await,
        )
    }

    async fn forward_write(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let command: Command = decode(req.into_inner())?;
        let result = self
            .node
            .write(command, true)
            .await
            .map_err(|s| (s.code() as i32, s.message().to_owned()));
        encode(&ForwardedResult(result))
    }
}
