//! Aegis control plane: the clustered desired-state daemon (`aegis-controlplane`), the client
//! library its agents use, and `aegisctl`, the admin CLI.
//!
//! - [`model`]: the desired-state objects, their validation and the revisioned state.
//! - [`raft`]: the replicated, durable log (openraft + redb) and the state machine.
//! - [`server`]: the daemon: gRPC services, cluster membership, the cluster IP holder, host
//!   liveness, metrics.
//! - [`vip`]: the cluster IP on the leader's management interface.
//! - [`cli`]: the command line and its dispatch; [`dp`]: `aegisctl dp ...`; [`cp`]: the
//!   control-plane commands.
//! - [`error`]: errors and exit codes; `table`: aligned text tables.
#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod cp;
pub mod dp;
pub mod error;
pub mod model;
pub mod raft;
pub mod server;
mod table;
pub mod vip;
