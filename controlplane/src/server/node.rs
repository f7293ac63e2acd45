//! The core of a control-plane node: its Raft instance and state machine, the write path
//! (validated, forwarded to the leader from a follower, refused without a quorum), the
//! linearizable-read barrier, host liveness, and counters for the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use aegis_api::controlplane::v1::RaftMessage;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

use super::config::NodeConfig;
use super::lease::Lease;
use super::liveness::Liveness;
use crate::client::{clients, Clients};
use crate::model::{Change, Command};
use crate::raft::types::Raft;
use crate::raft::MachineHandle;

/// A write's answer as forwarded between nodes.
#[derive(Serialize, Deserialize)]
pub struct ForwardedResult(pub Result<Change, (i32, String)>);

/// Counters exported as metrics.
#[derive(Default)]
pub struct Counters {
    /// Writes committed.
    pub writes_ok: AtomicU64,
    /// Writes rejected by validation.
    pub writes_rejected: AtomicU64,
    /// Writes that failed for want of a leader or quorum.
    pub writes_unavailable: AtomicU64,
    /// Writes forwarded to the leader.
    pub writes_forwarded: AtomicU64,
    /// Heartbeats received.
    pub heartbeats: AtomicU64,
    /// Open watch streams.
    pub watchers: AtomicU64,
    /// Cluster IP acquisitions.
    pub vip_acquired: AtomicU64,
    /// Cluster IP releases.
    pub vip_released: AtomicU64,
    /// Diagnostics calls answered here (leader) or forwarded (follower), by RPC.
    pub diag_drops: AtomicU64,
    /// Captures proxied to a host's dataplane (on the leader).
    pub diag_captures: AtomicU64,
    /// Trace watches passed through to a dataplane.
    pub diag_watches: AtomicU64,
    /// GatewayStatus calls answered here (leader) or forwarded (follower).
    pub diag_gateway_status: AtomicU64,
    /// Hosts a diagnostics call could not reach (down, no address, dataplane error).
    pub diag_unreachable: AtomicU64,
    /// Diagnostics calls forwarded to the leader.
    pub diag_forwarded: AtomicU64,
    /// Gateway-group sync assignments the leader wrote (first choices and re-selections).
    pub standby_reselections: AtomicU64,
    /// Writes of such an assignment that failed (retried next round).
    pub standby_reselect_failures: AtomicU64,
}

/// One control-plane node.
pub struct Node {
    /// Its configuration.
    pub config: Arc<NodeConfig>,
    /// The Raft instance.
    pub raft: Raft,
    /// Read access to the state machine.
    pub machine: MachineHandle,
    /// The leader lease.
    pub lease: Mutex<Lease>,
    /// Host liveness (meaningful on the leader).
    pub liveness: Mutex<Liveness>,
    /// Whether this node holds the cluster IP now.
    pub vip_held: AtomicBool,
    /// Metrics counters.
    pub counters: Counters,
    /// When the node started.
    pub started: Instant,
    peers: Mutex<HashMap<String, Clients>>,
}

/// Locks a mutex, ignoring poisoning (no invariant spans a panic here).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(msg: impl Into<String>) -> Status {
    Status::unavailable(msg.into())
}

impl Node {
    /// A node around a started Raft instance.
    pub fn new(config: Arc<NodeConfig>, raft: Raft, machine: MachineHandle) -> Self {
        Self {
            lease: Mutex::new(Lease::new(config.lease())),
            liveness: Mutex::new(Liveness::new(config.host_down_after)),
            config,
            raft,
            machine,
            vip_held: AtomicBool::new(false),
            counters: Counters::default(),
            started: Instant::now(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node is the leader (by its latest metrics).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader
    }

    /// Whether this node is leader with a lease: it has heard from a quorum recently.
    pub fn has_quorum(&self) -> bool {
        self.is_leader() && lock(&self.lease).held(Instant::now())
    }

    /// The current leader's id and address, if known.
    pub fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    /// Clients for the node at `addr` (cached).
    pub fn peer(&self, addr: &str) -> Result<Clients, Status> {
        let mut peers = lock(&self.peers);
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let c =
            clients(addr, &self.config.peer_client).map_err(|e| Status::internal(e.to_string()))?;
        peers.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Clients for the leader, or UNAVAILABLE when there is none or it is this node.
    pub fn leader_clients(&self) -> Result<Clients, Status> {
        match self.leader() {
            Some((id, _)) if id == self.config.id => Err(unavailable("this node is the leader")),
            Some((_, addr)) => self.peer(&addr),
            None => Err(unavailable(
                "no leader: the cluster is electing one or has no quorum; retry",
            )),
        }
    }

    /// Commits `command`. A follower forwards it to the leader (once: `forwarded` writes are
    /// not forwarded again); a leader without a quorum refuses it at once.
    pub async fn write(&self, command: Command, forwarded: bool) -> Result<Change, Status> {
        let result = self.write_inner(command, forwarded).await;
        let c = &self.counters;
        match &result {
            Ok(_) => c.writes_ok.fetch_add(1, Ordering::Relaxed),
            Err(s) if s.code() == Code::Unavailable => {
                c.writes_unavailable.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => c.writes_rejected.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    async fn write_inner(&self, command: Command, forwarded: bool) -> Result<Change, Status> {
        if !self.is_leader() {
            if forwarded {
                return Err(unavailable(
                    "leadership moved while the write was forwarded; retry",
                ));
            }
            return self.forward(command).await;
        }
        if !self.has_quorum() {
            return Err(unavailable(
                "this node is leader but has not heard from a majority of the cluster; writes are refused until it does (or another node leads)",
            ));
        }
        // Reject early without a log entry; the state machine checks again when applying,
        // in log order, which is what counts.
        self.machine.read().state.check(&command)?;
        let write = self.raft.client_write(command.clone());
        match tokio::time::timeout(self.config.write_timeout, write).await {
            Err(_) => Err(unavailable(format!(
                "the write was not committed within {:?} (no quorum?); it may still be applied",
                self.config.write_timeout
            ))),
            Ok(Ok(resp)) => match resp.data.0 {
                Some(Ok(change)) => Ok(change),
                Some(Err(e)) => Err(e.into()),
                None => Err(Status::internal("a command entry gave no result")),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) if !forwarded => {
                self.forward(command).await
            }
            Ok(Err(e)) => Err(unavailable(format!("write failed: {e}"))),
        }
    }

    async fn forward(&self, command: Command) -> Result<Change, Status> {
        let mut leader = self.leader_clients()?;
        self.counters
            .writes_forwarded
            .fetch_add(1, Ordering::Relaxed);
        let data = serde_json::to_vec(&command).map_err(|e| Status::internal(e.to_string()))?;
        let reply = leader
            .peer
            .forward_write(RaftMessage { data })
            .await
            .map_err(|s| {
                if s.code() == Code::Unauthenticated {
                    s
                } else {
                    unavailable(format!("forwarding to the leader failed: {}", s.message()))
                }
            })?
            .into_inner();
        let ForwardedResult(r) = serde_json::from_slice(&reply.data)
            .map_err(|e| Status::internal(format!("bad forwarded answer: {e}")))?;
        r.map_err(|(code, msg)| Status::new(Code::from_i32(code), msg))
    }

    /// Waits until a read on this node is linearizable. `Ok(false)`: this node is not the
    /// leader and the read must go to the leader.
    pub async fn read_barrier(&self) -> Result<bool, Status> {
        if !self.is_leader() {
            return Ok(false);
        }
        if !self.has_quorum() {
            return Err(unavailable(
                "this node is leader but has not heard from a majority recently; reads are refused until it does",
            ));
        }
        match tokio::time::timeout(self.config.write_timeout, self.raft.ensure_linearizable()).await
        {
            Err(_) => Err(unavailable("no quorum confirmed the leadership in time")),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => Ok(false),
            Ok(Err(e)) => Err(unavailable(format!(
                "cannot serve a linearizable read: {e}"
            ))),
        }
    }
}
