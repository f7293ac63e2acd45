//! Forwarding state: the immutable [`Snapshot`] workers read, the [`SnapshotCell`] it is
//! published through, and the control thread's side — the neighbour table state machine
//! ([`neighbour`]) and the tables that turn the desired configuration into snapshots
//! ([`builder`]).

pub mod snapshot;

mod cell;

pub use cell::{SnapshotCell, SnapshotReader};
pub use snapshot::{Adjacency, Mac, PortView, Snapshot};
