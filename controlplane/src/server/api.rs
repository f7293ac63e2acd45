//! The `DesiredState` service: create, update, delete (through the Raft log), linearizable
//! get and list (on the leader; a follower proxies them), and watch (see [`super::watch`]).

use std::sync::Arc;

use aegis_api::controlplane::v1::{
    desired_state_server::DesiredState, DeleteRequest, GetRequest, GetResponse, Kind, ListRequest,
    ListResponse, WatchRequest, WriteRequest, WriteResponse,
};
use tonic::{Request, Response, Status};

use super::node::Node;
use super::watch::{watch_stream, WatchStream};
use crate::model::kind::kind_name;
use crate::model::state::relevant_to_host;
use crate::model::{Change, Command};

/// The service, on one node.
pub struct DesiredStateService {
    node: Arc<Node>,
}

impl DesiredStateService {
    /// Serves `node`'s state.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn written(change: Change) -> Response<WriteResponse> {
    Response::new(WriteResponse {
        revision: change.revision,
        object: Some(change.object),
    })
}

fn object_kind(kind: i32) -> Result<Kind, Status> {
    Kind::try_from(kind)
        .map_err(|_| Status::invalid_argument(format!("kind {kind} is not an object kind")))
}

#[tonic::async_trait]
impl DesiredState for DesiredStateService {
    async fn create(&self, req: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let object = req
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("object is required"))?;
        self.node
            .write(Command::Create { object }, false)
            .await
            .map(written)
    }

    async fn update(&self, req: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let req = req.into_inner();
        let object = req
            .object
            .ok_or_else(|| Status::invalid_argument("object is required"))?;
        self.node
            .write(
                Command::Update {
                    object,
                    expected_revision: req.expected_revision,
                },
                false,
            )
            .await
            .map(written)
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<WriteResponse>, Status> {
        let req = req.into_inner();
        self.node
            .write(
                Command::Delete {
                    kind: req.kind,
                    name: req.name,
                    expected_revision: req.expected_revision,
                },
                false,
            )
            .await
            .map(written)
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        if !self.node.read_barrier().await? {
            return self
                .node
                .leader_clients()?
                .state
                .get(req.into_inner())
                .await;
        }
        let req = req.into_inner();
        let kind = object_kind(req.kind)?;
        if kind == Kind::Unspecified {
            return Err(Status::invalid_argument("kind is required"));
        }
        let m = self.node.machine.read();
        let object = m.state.get(kind, &req.name).cloned().ok_or_else(|| {
            Status::not_found(format!("{} {} does not exist", kind_name(kind), req.name))
        })?;
        Ok(Response::new(GetResponse {
            object: Some(object),
            revision: m.state.revision(),
        }))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        if !self.node.read_barrier().await? {
            return self
                .node
                .leader_clients()?
                .state
                .list(req.into_inner())
                .await;
        }
        let req = req.into_inner();
        let kind = object_kind(req.kind)?;
        let m = self.node.machine.read();
        let objects = m
            .state
            .list(kind)
            .into_iter()
            .filter(|o| req.host.is_empty() || relevant_to_host(o, &req.host))
            .cloned()
            .collect();
        Ok(Response::new(ListResponse {
            objects,
            revision: m.state.revision(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let req = req.into_inner();
        for k in &req.kinds {
            object_kind(*k)?;
        }
        Ok(Response::new(watch_stream(self.node.clone(), req)))
    }
}
