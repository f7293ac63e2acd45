//! The `Agents` service: heartbeats in (kept by the leader; a follower passes them on) and the
//! host table out.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use aegis_api::controlplane::v1::{
    agents_server::Agents, object::Spec, HeartbeatRequest, HeartbeatResponse, Kind,
    ListHostsRequest, ListHostsResponse,
};
use tonic::{Request, Response, Status};

use super::node::{lock, Node};

/// The service, on one node.
pub struct AgentsService {
    node: Arc<Node>,
}

impl AgentsService {
    /// Serves `node`'s host table.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Agents for AgentsService {
    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        if !self.node.is_leader() {
            return self
                .node
                .leader_clients()?
                .agents
                .heartbeat(req.into_inner())
                .await;
        }
        let beat = req.into_inner();
        if beat.host.is_empty() {
            return Err(Status::invalid_argument("host is required"));
        }
        if self
            .node
            .machine
            .read()
            .state
            .get(Kind::Host, &beat.host)
            .is_none()
        {
            return Err(Status::not_found(format!(
                "host {} does not exist; create it first (aegisctl host create)",
                beat.host
            )));
        }
        self.node
            .counters
            .heartbeats
            .fetch_add(1, Ordering::Relaxed);
        lock(&self.node.liveness).report(Instant::now(), beat);
        Ok(Response::new(HeartbeatResponse {
            revision: self.node.machine.revision(),
        }))
    }

    async fn list_hosts(
        &self,
        req: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        if !self.node.is_leader() {
            return self
                .node
                .leader_clients()?
                .agents
                .list_hosts(req.into_inner())
                .await;
        }
        let now = Instant::now();
        let (hosts, revision) = {
            let m = self.node.machine.read();
            let hosts: Vec<(String, i32)> = m
                .state
                .list(Kind::Host)
                .into_iter()
                .map(|o| {
                    let role = match &o.spec {
                        Some(Spec::Host(h)) => h.role,
                        _ => 0,
                    };
                    (o.name.clone(), role)
                })
                .collect();
            (hosts, m.state.revision())
        };
        let mut live = lock(&self.node.liveness);
        live.forget_except(&|h| hosts.iter().any(|(n, _)| n == h));
        let statuses = hosts
            .iter()
            .map(|(n, role)| live.status(now, n, *role))
            .collect();
        Ok(Response::new(ListHostsResponse {
            hosts: statuses,
            revision,
            down_after_ms: u64::try_from(live.down_after().as_millis()).unwrap_or(u64::MAX),
        }))
    }
}
