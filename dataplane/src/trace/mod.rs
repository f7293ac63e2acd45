//! Packet tracing: find where and why a packet dies.
//!
//! A traced packet carries a slot number in its metadata ([`crate::graph::Meta`]); the
//! worker's [`Tracer`] keeps, per slot, the trace id and the detail the deciding node noted
//! (the security-group rule, the VPC route, the Geneve destination). Every time a traced
//! packet leaves a node — to another node, a port, a drop, the hold queue — the graph's
//! [`crate::graph::Outputs`] writes a [`HopRecord`] to the worker's bounded record queue;
//! the control thread drains the queues into the [`TraceStore`], which the admin API
//! answers from. Untraced packets cost one branch on a metadata byte per hop.
//!
//! Traces start in three places:
//! - a **probe** the control thread injects at a VM port's ingress, built as that VM would
//!   send it ([`probe`]); it carries the in-band [`probe::MARK`] so any dataplane can tell it
//!   from VM traffic, is consumed at its destination port and never reaches a VM;
//! - a Geneve packet with the Aegis trace option (the source host traced it);
//! - real traffic that matches a running trace **watch** ([`watch`]): traced on this host
//!   under a [`WATCH_BIT`] id and delivered normally;
//!
//! A VM-sent packet carrying the probe mark is **not** traced but dropped
//!   (`trace_forged`): a VM cannot make the dataplane consume or report its packets.

pub mod probe;
pub mod record;
pub mod store;
pub mod summary;
pub mod tracer;
pub mod watch;

pub use record::{Action, Detail, HopRecord};
pub use store::TraceStore;
pub use summary::PacketSummary;
pub use tracer::{TraceChannel, Tracer};
pub use watch::{WatchCommand, WatchHub, WatchSession, WatchSpec, Watches, WATCH_BIT};

/// False in a build with the `untraced` feature: the trace hooks (probes, the probe-mark
/// check, the Geneve trace option, trace watches) compile to nothing. That build exists only
/// to measure what the hooks cost when nothing is traced (`scripts/bench-trace-cost.sh`).
pub const ENABLED: bool = !cfg!(feature = "untraced");

/// Trace ids of probes have this bit set (carried in the Geneve option, so the receiving
/// host knows to consume the packet at its destination port).
pub const PROBE_BIT: u64 = 1 << 63;

/// True if trace id `id` belongs to a probe.
pub fn is_probe(id: u64) -> bool {
    id & PROBE_BIT != 0
}
