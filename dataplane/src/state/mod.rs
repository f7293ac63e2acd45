//! Forwarding state: the immutable [`Snapshot`] workers read and the [`SnapshotCell`] it is
//! published through (worker side), and the control thread's side — the desired
//! configuration ([`forwarding`]), the neighbour table state machine ([`neighbour`]) and the
//! [`Tables`] that validate changes and build snapshots ([`builder`]).

pub mod snapshot;

mod adjacency;
pub mod builder;
mod cell;
mod error;
pub mod forwarding;
pub mod listing;
pub mod mac;
pub mod neighbour;

pub use adjacency::AdjKey;
pub use builder::{Tables, TablesOptions};
pub use cell::{SnapshotCell, SnapshotReader};
pub use error::StateError;
pub use forwarding::{
    ForwardingConfig, IfAddr, PortConfig, RouteConfig, RouteTarget, StaticNeighbour,
};
pub use listing::{NeighbourEntry, RouteEntry, RouteKind, RouteOrigin};
pub use neighbour::{NeighbourAction, NeighbourConfig, NeighbourState, NeighbourTable};
pub use snapshot::{Adjacency, Mac, PortView, Snapshot};
