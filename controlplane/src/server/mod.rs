//! The `aegis-controlplane` daemon: one node of the control cluster.
//!
//! - [`config`]: what a node is started with.
//! - [`node`]: the node's core: the Raft instance, writes (forwarded to the leader when
//!   received by a follower), linearizable reads, host liveness.
//! - [`api`], [`watch`], [`agents`], [`cluster`], [`peer`]: the gRPC services;
//!   [`diagnostics`]: the hosts' dataplanes reached through the leader (drops, capture).
//! - [`auth`]: the bearer-token check; [`lease`]: the leader lease; [`leader`]: the task that
//!   holds the cluster IP while the lease is held; [`liveness`]: heartbeats → host up/down;
//!   [`standby`]: which gateway-group members hold the sessions, [`reselect`]: the leader's
//!   task that keeps that choice;
//!   [`metrics`]: the Prometheus endpoint; [`run`]: start-up and shutdown.

pub mod agents;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod diagnostics;
pub mod leader;
pub mod lease;
pub mod liveness;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod reselect;
pub mod run;
pub mod standby;
pub mod watch;

pub use config::{ClusterIpConfig, NodeConfig};
pub use node::Node;
pub use run::run;
