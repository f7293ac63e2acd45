//! The replicated log: openraft's type configuration, its durable storage (a redb file per
//! node holding the log, the vote and the snapshot), the state machine that applies the log
//! to the [`DesiredState`](crate::model::DesiredState), and the network between nodes (gRPC,
//! JSON-encoded openraft messages).

// openraft's storage traits dictate `StorageError` (large) as the error type, and redb's
// errors are what they are; boxing them here would only add allocations on error paths.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use log_store::LogStore;
pub use state_machine::{MachineHandle, StateMachine};
pub use types::{NodeId, TypeConfig, WriteOutcome};
