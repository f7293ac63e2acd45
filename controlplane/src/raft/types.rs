//! openraft's type configuration for the control plane: log entries carry a
//! [`Command`](crate::model::Command), applying one yields a [`WriteOutcome`].

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::model::{Change, Command, ModelError};

/// A node's id in the cluster (given with `--id`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The control plane's Raft types.
    pub TypeConfig:
        D = Command,
        R = WriteOutcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying one log entry gave: `None` for entries that are not commands (blank and
/// membership entries).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WriteOutcome(pub Option<Result<Change, ModelError>>);

/// The Raft instance of the control plane.
pub type Raft = openraft::Raft<TypeConfig>;

/// Log id with our node id type.
pub type LogId = openraft::LogId<NodeId>;

/// Membership as stored, with our types.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

/// A storage error with our node id type.
pub type StorageError = openraft::StorageError<NodeId>;
