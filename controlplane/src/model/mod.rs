//! The desired state: the objects operators declare (hosts, VPCs, subnets, ports, routes,
//! security groups, external networks, gateway groups, floating IPs, SNAT rules), their
//! validation, and the revisioned store every change goes through.
//!
//! The object types are the API's protobuf messages (`aegis.controlplane.v1`); this module
//! adds what the wire format cannot say: field syntax ([`parse`]), the rules between objects
//! ([`validate`]), and the deterministic state every control-plane node applies the Raft log
//! to ([`state`]).

pub mod error;
pub mod kind;
pub mod parse;
pub mod state;
pub mod validate;

pub use error::{ErrorCode, ModelError};
pub use kind::{kind_from_name, kind_name, kind_of, ALL_KINDS};
pub use state::{Change, ChangeType, Command, DesiredState};
