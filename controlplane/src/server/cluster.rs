//! The `Cluster` service: this node's view of the cluster, and membership changes (join as a
//! learner, then voter; leave), which the leader carries out.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aegis_api::controlplane::v1::{
    cluster_server::Cluster, JoinRequest, JoinResponse, LeaveRequest, Member, StatusRequest,
    StatusResponse,
};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::{Request, Response, Status};

use super::node::Node;

/// The service, on one node.
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    /// Serves `node`'s cluster view.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn members(&self) -> Vec<Member> {
        let m = self.node.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                address: node.addr.clone(),
                voter: voters.contains(id),
                matched_index: m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map_or(0, |l| l.index),
            })
            .collect()
    }
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let (mut resp, leader_id) = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            (
                StatusResponse {
                    node_id: m.id,
                    state: state_name(m.state).to_owned(),
                    leader_id: m.current_leader.unwrap_or(0),
                    term: m.current_term,
                    last_log_index: m.last_log_index.unwrap_or(0),
                    last_applied_index: m.last_applied.map_or(0, |l| l.index),
                    quorum_ack_ms_ago: m.millis_since_quorum_ack.unwrap_or(0),
                    ..Default::default()
                },
                m.current_leader,
            )
        };
        resp.leader_address = leader_id
            .and_then(|_| self.node.leader().map(|(_, a)| a))
            .unwrap_or_default();
        resp.revision = self.node.machine.revision();
        resp.members = self.members();
        resp.cluster_ip = self
            .node
            .config
            .cluster_ip
            .as_ref()
            .map(|c| format!("{}/{} on {}", c.address, c.prefix_len, c.interface))
            .unwrap_or_default();
        resp.holds_cluster_ip = self.node.vip_held.load(Ordering::Relaxed);
        Ok(Response::new(resp))
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        if !self.node.is_leader() {
            return self
                .node
                .leader_clients()?
                .cluster
                .join(req.into_inner())
                .await;
        }
        let req = req.into_inner();
        if req.node_id == 0 || req.address.is_empty() {
            return Err(Status::invalid_argument(
                "node_id (non-zero) and address are required",
            ));
        }
        let (voters, known) = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let known = membership.get_node(&req.node_id).map(|n| n.addr.clone());
            (voters, known)
        };
        if let Some(addr) = &known {
            if addr != &req.address {
                return Err(Status::already_exists(format!(
                    "node {} is already a member at {addr}; remove it first (aegisctl cluster leave)",
                    req.node_id
                )));
            }
        }
        if !voters.contains(&req.node_id) {
            if known.is_none() {
                self.node
                    .raft
                    .add_learner(req.node_id, BasicNode::new(&req.address), true)
                    .await
                    .map_err(|e| {
                        Status::unavailable(format!("adding node {} as learner: {e}", req.node_id))
                    })?;
            }
            self.node
                .raft
                .change_membership(
                    ChangeMembers::AddVoterIds(BTreeSet::from([req.node_id])),
                    false,
                )
                .await
                .map_err(|e| {
                    Status::unavailable(format!("making node {} a voter: {e}", req.node_id))
                })?;
        }
        Ok(Response::new(JoinResponse {
            members: self.members(),
        }))
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<JoinResponse>, Status> {
        if !self.node.is_leader() {
            return self
                .node
                .leader_clients()?
                .cluster
                .leave(req.into_inner())
                .await;
        }
        let id = req.into_inner().node_id;
        let is_member = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().get_node(&id).is_some()
        };
        if !is_member {
            return Err(Status::not_found(format!("node {id} is not a member")));
        }
        self.node
            .raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Status::failed_precondition(format!("removing node {id}: {e}")))?;
        self.node
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Status::failed_precondition(format!("removing node {id}: {e}")))?;
        Ok(Response::new(JoinResponse {
            members: self.members(),
        }))
    }
}
