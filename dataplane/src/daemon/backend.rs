//! The daemon's [`AdminBackend`]: answers the admin API from the control thread's
//! [`Tables`] (behind a mutex only the control side takes), the workers' counters and the
//! DPDK ports' statistics; mutations go through `Tables` and publish a new snapshot.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::ctl::{
    AdminBackend, AdminError, ErrorCount, InterfaceInfo, Ipv4Cidr, NeighbourInfo, NeighbourState,
    NodeRuntime, RouteInfo, RouteSpec, Status, WorkerErrors, WorkerInfo, WorkerRuntime,
};
use crate::graph::{DropReason, RUNTIME_SLOTS};
use crate::port::Port;
use crate::state::{self, SnapshotCell, Tables};
use crate::worker::poll::PollMode;
use crate::worker::WorkerHandle;

use super::counters::{port_counters, Baseline};
use super::feed::Feed;
use super::persist::{Change, RuntimeLog};

/// Shared between the admin server, the metrics endpoint and the control loop.
pub struct DaemonBackend {
    /// The control thread's tables.
    pub tables: Mutex<Tables>,
    /// Where workers read snapshots.
    pub cell: Arc<SnapshotCell>,
    /// Workers: counters and queues.
    pub workers: Vec<(WorkerHandle, u32)>,
    /// DPDK ports in index order, with their devargs.
    pub ports: Vec<(Port, String)>,
    /// Counter values at the last "clear counters".
    pub baseline: Mutex<Baseline>,
    /// Runtime changes saved for a restart.
    pub log: Mutex<RuntimeLog>,
    /// Idle policy of the workers.
    pub poll_mode: PollMode,
    /// Start time.
    pub started: Instant,
    /// The control-plane feed (`--controlplane`), if any.
    pub feed: Option<Feed>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DaemonBackend {
    /// Applies a change: validated on a copy of the tables, journalled (on disk before
    /// the answer), then made current and published. A refused change, or one that cannot
    /// be journalled, changes nothing.
    pub fn apply(&self, change: Change) -> Result<u64, AdminError> {
        let mut t = lock(&self.tables);
        let mut next = t.clone();
        let rev = change.apply(&mut next)?;
        if let Err(e) = lock(&self.log).append(&change) {
            tracing::error!(error = %e, change = %change.to_line(), "cannot journal a runtime change");
            return Err(AdminError::Internal(format!(
                "cannot write the runtime journal ({e}); nothing was changed"
            )));
        }
        *t = next;
        if t.needs_publish() {
            self.cell.publish(t.snapshot());
        }
        Ok(rev)
    }
}

impl AdminBackend for DaemonBackend {
    fn status(&self) -> Result<Status, AdminError> {
        Ok(Status {
            revision: lock(&self.tables).revision(),
            uptime: self.started.elapsed(),
            poll_mode: self.poll_mode,
            workers: self
                .workers
                .iter()
                .map(|(h, lcore)| WorkerInfo {
                    id: h.id as u32,
                    lcore: *lcore,
                })
                .collect(),
            controlplane: self.feed.as_ref().map(|f| lock(&f.state).status()),
        })
    }

    fn interfaces(&self) -> Result<Vec<InterfaceInfo>, AdminError> {
        let snap = self.cell.load();
        let base = lock(&self.baseline);
        let mut out = Vec::new();
        for (i, (port, devargs)) in self.ports.iter().enumerate() {
            let view = snap.ports.get(i);
            let link = port.link().ok();
            let stats = port.stats().unwrap_or_default();
            let counters = base.port(i, port_counters(&stats));
            out.push(InterfaceInfo {
                index: i as u16,
                name: view.map_or_else(|| port.name().to_owned(), |v| v.name.clone()),
                devargs: devargs.clone(),
                mac: view.map_or([0; 6], |v| v.mac),
                mtu: view.map_or(0, |v| v.mtu),
                admin_up: view.is_some_and(|v| v.up),
                link_up: link.is_some_and(|l| l.up),
                link_speed_mbps: link.map_or(0, |l| l.speed_mbps),
                addresses: view
                    .map(|v| {
                        v.addrs
                            .iter()
                            .filter_map(|(a, l)| Ipv4Cidr::new(*a, *l))
                            .collect()
                    })
                    .unwrap_or_default(),
                counters,
            });
        }
        Ok(out)
    }

    fn runtime(&self) -> Result<Vec<WorkerRuntime>, AdminError> {
        let base = lock(&self.baseline);
        Ok(self
            .workers
            .iter()
            .map(|(h, lcore)| {
                let s = &h.stats;
                let b = base.worker(h.id);
                WorkerRuntime {
                    id: h.id as u32,
                    lcore: *lcore,
                    polls: s.polls.load(Relaxed) - b.polls,
                    idle_polls: s.idle_polls.load(Relaxed) - b.idle_polls,
                    sleeps: s.sleeps.load(Relaxed) - b.sleeps,
                    consumed: s.consumed.load(Relaxed) - b.consumed,
                    icmp_sent: s.icmp_sent.load(Relaxed) - b.icmp_sent,
                    icmp_rate_limited: s.icmp_rate_limited.load(Relaxed) - b.icmp_rate_limited,
                    nodes: RUNTIME_SLOTS
                        .iter()
                        .enumerate()
                        .map(|(i, name)| NodeRuntime {
                            name: (*name).to_owned(),
                            calls: s.nodes[i].calls.load(Relaxed) - b.nodes[i][0],
                            vectors: s.nodes[i].packets.load(Relaxed) - b.nodes[i][1],
                            clocks: s.nodes[i].clocks.load(Relaxed) - b.nodes[i][2],
                        })
                        .collect(),
                }
            })
            .collect())
    }

    fn errors(&self) -> Result<Vec<WorkerErrors>, AdminError> {
        let base = lock(&self.baseline);
        Ok(self
            .workers
            .iter()
            .map(|(h, _)| {
                let b = base.worker(h.id);
                WorkerErrors {
                    worker: h.id as u32,
                    counts: DropReason::ALL
                        .iter()
                        .map(|r| ErrorCount {
                            reason: r.name().to_owned(),
                            description: r.description().to_owned(),
                            count: h.stats.drops_for(*r) - b.drops[*r as usize],
                        })
                        .collect(),
                }
            })
            .collect())
    }

    fn routes(&self) -> Result<Vec<RouteInfo>, AdminError> {
        let t = lock(&self.tables);
        Ok(t.route_entries()
            .into_iter()
            .filter_map(|e| {
                Some(RouteInfo {
                    prefix: Ipv4Cidr::new(e.prefix.addr(), e.prefix.length())?,
                    kind: e.kind,
                    next_hop: e.next_hop,
                    port: e.port_name,
                    origin: e.origin,
                })
            })
            .collect())
    }

    fn neighbours(&self) -> Result<Vec<NeighbourInfo>, AdminError> {
        let t = lock(&self.tables);
        Ok(t.neighbour_entries(self.started.elapsed())
            .into_iter()
            .map(|e| NeighbourInfo {
                port: e.port_name,
                ip: e.ip,
                mac: e.mac,
                state: match e.state {
                    state::NeighbourState::Incomplete { .. } => NeighbourState::Incomplete,
                    state::NeighbourState::Reachable => NeighbourState::Reachable,
                    state::NeighbourState::Stale => NeighbourState::Stale,
                    state::NeighbourState::Failed => NeighbourState::Failed,
                    state::NeighbourState::Static => NeighbourState::Static,
                },
                age: e.age,
            })
            .collect())
    }

    fn add_route(&self, route: RouteSpec) -> Result<u64, AdminError> {
        self.apply(Change::AddRoute {
            prefix: route.prefix,
            target: route.target,
        })
    }

    fn delete_route(&self, prefix: Ipv4Cidr) -> Result<u64, AdminError> {
        if self.controlplane_owns_route(prefix) {
            return Err(AdminError::invalid(
                "prefix",
                format!("the route for {prefix} comes from the control plane; change it there"),
            ));
        }
        self.apply(Change::DeleteRoute { prefix })
    }

    fn add_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError> {
        self.apply(Change::AddAddress { port, address })
    }

    fn delete_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError> {
        if self.controlplane_owns_address(&port, address) {
            return Err(AdminError::invalid(
                "address",
                format!("{address} on {port} comes from the control plane; change it there"),
            ));
        }
        self.apply(Change::DeleteAddress { port, address })
    }

    fn set_port_state(&self, port: String, up: bool) -> Result<u64, AdminError> {
        self.apply(Change::PortState { port, up })
    }

    fn clear_counters(&self) -> Result<u64, AdminError> {
        let mut base = lock(&self.baseline);
        for (h, _) in &self.workers {
            base.capture_worker(h.id, &h.stats);
        }
        for (i, (port, _)) in self.ports.iter().enumerate() {
            let s = port.stats().unwrap_or_default();
            base.capture_port(i, port_counters(&s));
        }
        Ok(lock(&self.tables).revision())
    }
}
