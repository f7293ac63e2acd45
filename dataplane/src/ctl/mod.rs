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
mod pump;
mod request;
mod server;
mod service;
pub mod trace;
mod types;
pub mod watch;

pub use backend::{AdminBackend, AdminError};
pub use cidr::{format_mac, parse_mac, CidrError, Ipv4Cidr};
pub use memory::{MemoryBackend, MEMORY_HOST};
pub use server::{serve_unix, AdminServer, CtlError};
pub use service::AdminService;
pub use types::{
    ConnQuery, ConnState, ConnectionInfo, ControlPlaneStatus, DenialCount, ErrorCount,
    InterfaceInfo, NatQuery, NatSessionInfo, NeighbourInfo, NeighbourState, NodeRuntime,
    OverlayInfo, PollMode, PortCounters, PortLocation, RouteInfo, RouteKind, RouteOrigin,
    RouteSpec, RouteTarget, Status, SyncInfo, SyncPeerInfo, VpcInfo, VpcPortInfo, VpcRouteInfo,
    VpcRouteTarget, VpcSubnetInfo, VrrpInfo, VrrpInstanceInfo, WorkerConnections, WorkerErrors,
    WorkerInfo, WorkerNatSessions, WorkerRuntime, DEFAULT_CONNECTIONS_LIMIT, MAX_CONNECTIONS_LIMIT,
};

#[cfg(test)]
mod tests;

/// Binds a TCP listener for a tokio server started later (binding needs no runtime, so a
/// bad or busy address fails the daemon's start-up): non-blocking, with its real address
/// (port 0 picks one). `Err` says which step failed.
pub(crate) fn bind_listener(
    addr: std::net::SocketAddr,
) -> Result<(std::net::TcpListener, std::net::SocketAddr), (&'static str, std::io::Error)> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| ("bind", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ("set non-blocking", e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ("read the local address", e))?;
    Ok((listener, local))
}
