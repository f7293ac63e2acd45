//! The admin API: the `aegis.dataplane.v1.DataplaneAdmin` gRPC server on a unix socket
//! ([`serve_unix`]) and the Prometheus endpoint ([`metrics`]), both written against the
//! [`AdminBackend`] trait so nothing here touches DPDK. [`MemoryBackend`] is the in-memory
//! implementation used by tests and by `aegisctl`'s tests.
//!
//! - `backend.rs`: the trait and [`AdminError`]; `types.rs`: the values it exchanges;
//!   `cidr.rs`: [`Ipv4Cidr`] and MAC formatting.
//! - `request.rs`: protobuf requests → typed, validated arguments;
//!   `convert.rs`: backend values → protobuf replies (ratios, totals).
//! - `capture.rs`: the `Capture` RPC — request checks, starting a capture, the event stream.
//! - `service.rs`: the tonic service; `server.rs`: socket handling and serving.
//! - `diag.rs`: the read-only `DataplaneDiagnostics` service on TCP for the control plane,
//!   delegating to the admin service.
//! - `memory.rs`: [`MemoryBackend`]; `metrics.rs`: `/metrics`.

mod backend;
pub mod capture;
mod cidr;
mod convert;
pub mod diag;
mod memory;
pub mod metrics;
mod request;
mod server;
mod service;
pub mod trace;
mod types;

pub use backend::{AdminBackend, AdminError};
pub use cidr::{format_mac, parse_mac, CidrError, Ipv4Cidr};
pub use memory::{MemoryBackend, MEMORY_HOST};
pub use server::{serve_unix, AdminServer, CtlError};
pub use service::AdminService;
pub use types::{
    ConnQuery, ConnState, ConnectionInfo, ControlPlaneStatus, DenialCount, ErrorCount,
    InterfaceInfo, NeighbourInfo, NeighbourState, NodeRuntime, OverlayInfo, PollMode, PortCounters,
    PortLocation, RouteInfo, RouteKind, RouteOrigin, RouteSpec, RouteTarget, Status, SyncInfo,
    SyncPeerInfo, VpcInfo, VpcPortInfo, VpcRouteInfo, VpcRouteTarget, VpcSubnetInfo, VrrpInfo,
    VrrpInstanceInfo, WorkerConnections, WorkerErrors, WorkerInfo, WorkerRuntime,
    DEFAULT_CONNECTIONS_LIMIT, MAX_CONNECTIONS_LIMIT,
};

#[cfg(test)]
mod tests;
