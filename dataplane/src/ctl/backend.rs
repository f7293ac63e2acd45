//! The seam between the admin API and the dataplane: [`AdminBackend`], plain Rust in and
//! out, and [`AdminError`], the one error a backend returns. The gRPC server, the metrics
//! endpoint and the in-memory backend are all written against this trait only.

use std::fmt;

use super::capture::{CaptureCounters, CaptureQuery, CaptureStart};
use super::cidr::Ipv4Cidr;
use super::types::{
    ConnQuery, DenialCount, InterfaceInfo, NatQuery, NeighbourInfo, OverlayInfo, RouteInfo,
    RouteSpec, Status, SyncInfo, VrrpInfo, WorkerConnections, WorkerErrors, WorkerNatSessions,
    WorkerRuntime,
};

/// What the admin server needs from the dataplane.
///
/// Methods are synchronous and may block briefly (take a lock, read port statistics,
/// rebuild and publish a snapshot): the server calls them on tokio's blocking pool.
/// Arguments are already parsed and syntactically valid (prefixes have no host bits,
/// interface addresses are unicast); the backend checks them against its state.
/// Mutations return the configuration revision after the change.
pub trait AdminBackend: Send + Sync + 'static {
    /// Revision, uptime, poll mode and workers.
    fn status(&self) -> Result<Status, AdminError>;

    /// Every port, in index order.
    fn interfaces(&self) -> Result<Vec<InterfaceInfo>, AdminError>;

    /// Per-worker loop and node statistics, in worker order.
    fn runtime(&self) -> Result<Vec<WorkerRuntime>, AdminError>;

    /// Per-worker drop counters, every reason included.
    fn errors(&self) -> Result<Vec<WorkerErrors>, AdminError>;

    /// The routing table: static, connected and local routes.
    fn routes(&self) -> Result<Vec<RouteInfo>, AdminError>;

    /// The neighbour table.
    fn neighbours(&self) -> Result<Vec<NeighbourInfo>, AdminError>;

    /// The connections matching `query`, per worker in worker order, with at most
    /// `query.limit` connections over all workers (see [`ConnQuery::truncate`]). A worker
    /// that does not answer in time is reported with its `error`, not as a failure of the
    /// whole call. `NotFound` (field "port") for a port name that is neither a dataplane port
    /// nor a control-plane port on this host.
    fn connections(&self, query: &ConnQuery) -> Result<Vec<WorkerConnections>, AdminError>;

    /// The NAT sessions matching `query`, per worker in worker order, with at most
    /// `query.limit` sessions over all workers. A worker that does not answer in time is
    /// reported with its `error`. `NotFound` (field "vpc") for a VPC name this host's
    /// overlay does not know.
    fn nat_sessions(&self, query: &NatQuery) -> Result<Vec<WorkerNatSessions>, AdminError>;

    /// The overlay the workers use: every VPC with its subnets, routes and ports.
    fn overlay(&self) -> Result<OverlayInfo, AdminError>;

    /// Security-group denials per counter name, summed over the workers (zeros included).
    fn security_denials(&self) -> Result<Vec<DenialCount>, AdminError>;

    /// The VRRP speaker's instances (none when the host runs no VRRP).
    fn vrrp(&self) -> Result<VrrpInfo, AdminError>;

    /// Session sync between the gateways of a group; `None` when not configured.
    fn sync(&self) -> Result<Option<SyncInfo>, AdminError>;

    /// Adds a static route. `AlreadyExists` if the prefix has one; `NotFound` for an
    /// unknown port; `InvalidArgument` for a gateway not on a connected subnet.
    fn add_route(&self, route: RouteSpec) -> Result<u64, AdminError>;

    /// Deletes the static route for `prefix`. `NotFound` if there is none.
    fn delete_route(&self, prefix: Ipv4Cidr) -> Result<u64, AdminError>;

    /// Adds `address` to `port`.
    fn add_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError>;

    /// Removes `address` from `port`. `NotFound` if the port does not have it.
    fn delete_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError>;

    /// Sets `port` administratively up or down.
    fn set_port_state(&self, port: String, up: bool) -> Result<u64, AdminError>;

    /// Zeroes port, node, worker, drop and denial counters; returns the (unchanged)
    /// revision.
    fn clear_counters(&self) -> Result<u64, AdminError>;

    /// Starts a packet capture on the workers (see [`super::capture::start`]); it runs until
    /// the returned session is dropped. `NotFound` (field "ports" or "nodes") for an unknown
    /// port or graph node; `InvalidArgument` (field "capture") when the most captures run
    /// already.
    fn capture(&self, query: CaptureQuery) -> Result<CaptureStart, AdminError>;

    /// Captures running and the packets they lost to full rings (`capture_overflow`).
    fn capture_counters(&self) -> CaptureCounters;

    /// Injects a traced probe at a VM port's ingress (`aegisctl trace`). Backends without
    /// workers (the in-memory test backend) refuse.
    fn inject_probe(
        &self,
        _query: super::trace::ProbeQuery,
    ) -> Result<aegis_api::dataplane::v1::InjectProbeReply, AdminError> {
        Err(AdminError::Internal(
            "this backend runs no workers: probes cannot be injected".into(),
        ))
    }

    /// Starts a trace watch on the workers (see [`super::watch::start`]); it runs until the
    /// returned session is dropped. Backends without workers refuse.
    fn trace_watch(
        &self,
        _query: super::watch::WatchQuery,
    ) -> Result<super::watch::WatchStart, AdminError> {
        Err(AdminError::Internal(
            "this backend runs no workers: nothing to watch".into(),
        ))
    }

    /// Takes up to `max` completed paths of watch `watch` (see
    /// [`crate::trace::TraceStore::take_watched`]).
    fn watch_paths(&self, _watch: u8, _max: usize) -> Vec<aegis_api::dataplane::v1::WatchedPath> {
        Vec::new()
    }

    /// Paths of watch `watch` its ring overwrote before they were taken.
    fn watch_overwritten(&self, _watch: u8) -> u64 {
        0
    }

    /// Forgets watch `watch`'s unread paths (its stream ended).
    fn end_watch(&self, _watch: u8) {}

    /// Trace watches running, and the packets every watch traced since start.
    fn watch_counters(&self) -> (u64, u64) {
        (0, 0)
    }

    /// The hop records held for trace `id`.
    fn trace_records(
        &self,
        _id: u64,
    ) -> Result<aegis_api::dataplane::v1::TraceRecordsReply, AdminError> {
        Err(AdminError::Internal(
            "this backend runs no workers: no trace records".into(),
        ))
    }
}

/// Why a backend refused or failed a request. The message names the field it is about;
/// the server maps each variant to a gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// The request is not acceptable (`INVALID_ARGUMENT`).
    InvalidArgument {
        /// Request field at fault ("via", "prefix", ...).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The request names a port, route or address that does not exist (`NOT_FOUND`).
    NotFound {
        /// Request field naming the missing thing.
        field: &'static str,
        /// What is missing.
        message: String,
    },
    /// The thing to add is already there (`ALREADY_EXISTS`).
    AlreadyExists {
        /// Request field naming the duplicate.
        field: &'static str,
        /// What it collides with.
        message: String,
    },
    /// The backend failed (`INTERNAL`).
    Internal(String),
}

impl AdminError {
    /// An `InvalidArgument` about `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AdminError::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// A `NotFound` about `field`.
    pub fn not_found(field: &'static str, message: impl Into<String>) -> Self {
        AdminError::NotFound {
            field,
            message: message.into(),
        }
    }

    /// An `AlreadyExists` about `field`.
    pub fn exists(field: &'static str, message: impl Into<String>) -> Self {
        AdminError::AlreadyExists {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::InvalidArgument { field, message }
            | AdminError::NotFound { field, message }
            | AdminError::AlreadyExists { field, message } => write!(f, "{field}: {message}"),
            AdminError::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<AdminError> for tonic::Status {
    fn from(e: AdminError) -> Self {
        let message = e.to_string();
        match e {
            AdminError::InvalidArgument { .. } => tonic::Status::invalid_argument(message),
            AdminError::NotFound { .. } => tonic::Status::not_found(message),
            AdminError::AlreadyExists { .. } => tonic::Status::already_exists(message),
            AdminError::Internal(_) => tonic::Status::internal(message),
        }
    }
}
