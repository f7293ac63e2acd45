//! The daemon's [`AdminBackend`]: answers the admin API from the control thread's
//! [`Tables`] (behind a mutex only the control side takes), the published snapshot (the
//! overlay the workers use), the workers' counters and the DPDK ports' statistics;
//! mutations go through `Tables` and publish a new snapshot. Connection tables belong to
//! the workers: they are asked for dumps through their queues ([`crate::worker::dump`]).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::conntrack::ConnView;
use crate::ctl::{
    AdminBackend, AdminError, ConnQuery, ConnectionInfo, DenialCount, ErrorCount, InterfaceInfo,
    Ipv4Cidr, NatQuery, NatSessionInfo, NeighbourInfo, NeighbourState, NodeRuntime, OverlayInfo,
    PortLocation, RouteInfo, RouteSpec, Status, SyncInfo, VpcInfo, VpcPortInfo, VpcRouteInfo,
    VpcRouteTarget, VpcSubnetInfo, VrrpInfo, WorkerConnections, WorkerErrors, WorkerInfo,
    WorkerNatSessions, WorkerRuntime,
};
use crate::fib::Prefix;
use crate::graph::{DropReason, RUNTIME_SLOTS};
use crate::overlay::secgroup::{MAX_COUNTER_SLOTS, SLOT_DEFAULT_EGRESS_ALLOW};
use crate::overlay::{Location, VpcTarget};
use crate::port::Port;
use crate::state::{self, Snapshot, SnapshotCell, Tables};
use crate::worker::dump::{self, ConnFilter, NatFilter};
use crate::worker::poll::PollMode;
use crate::worker::WorkerHandle;

/// How long `show connections` and `show nat-sessions` wait for the workers' dumps.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The VRRP speaker (`[vrrp]` in host.toml), if any.
    pub vrrp: Option<Mutex<super::vrrp::VrrpSpeaker>>,
    /// Packet captures on the workers.
    pub capture: Arc<crate::capture::CaptureHub>,
    /// Session sync (`[sync]` in host.toml), if any. Lock order: `vrrp`, then `sync`.
    pub sync: Option<Mutex<super::sync::SyncDriver>>,
    /// Trace watches on the workers.
    pub watch: Arc<crate::trace::WatchHub>,
    /// Hop records of traced packets, drained from the workers.
    pub traces: Mutex<crate::trace::TraceStore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DaemonBackend {
    /// The host name captures and watches are labelled with (the control plane's, else
    /// the system's), and the configured port names in index order (as `show interfaces`,
    /// not the DPDK device names).
    fn host_and_ports(&self) -> (String, Vec<String>) {
        let host = match &self.feed {
            Some(f) => lock(&f.state).host.clone(),
            None => crate::ctl::capture::system_host_name(),
        };
        let snap = self.cell.load();
        let ports = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, (port, _))| {
                snap.ports
                    .get(i)
                    .map_or_else(|| port.name().to_owned(), |v| v.name.clone())
            })
            .collect();
        (host, ports)
    }

    /// Where the VRRP speaker sends (worker 0's injection queue) and reads link state.
    pub fn vrrp_io(&self) -> Option<super::vrrp::DaemonIo<'_>> {
        self.workers.first().map(|(h, _)| super::vrrp::DaemonIo {
            inject: &h.inject,
            ports: &self.ports,
            sync: self.sync.as_ref(),
            feed: self.feed.as_ref(),
        })
    }

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
                endpoint: endpoint_on(&snap, i as u16).map(str::to_owned),
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
                    connections: s.connections.load(Relaxed),
                    connection_capacity: s.connection_capacity.load(Relaxed),
                    nat_sessions: s.nat_sessions.load(Relaxed),
                    nat_sessions_revoked: s.nat_revoked.load(Relaxed),
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

    fn connections(&self, query: &ConnQuery) -> Result<Vec<WorkerConnections>, AdminError> {
        let snap = self.cell.load();
        let zone = match &query.port {
            Some(name) => Some(zone_of(&snap, name)?),
            None => None,
        };
        let filter = ConnFilter {
            zone,
            ip: query.ip.map(u32::from),
            proto: query.protocol,
            state: query.state,
        };
        let asked = self
            .workers
            .iter()
            .map(|(h, _)| dump::ask(&h.dumps, filter, query.limit))
            .collect();
        let answers = dump::collect(asked, DUMP_TIMEOUT);
        let mut out: Vec<WorkerConnections> = self
            .workers
            .iter()
            .zip(answers)
            .map(|((h, _), answer)| match answer {
                Ok(d) => WorkerConnections {
                    worker: h.id as u32,
                    entries: d.entries,
                    capacity: d.capacity,
                    matched: d.matched,
                    connections: d
                        .connections
                        .iter()
                        .map(|c| connection_info(&snap, c))
                        .collect(),
                    error: None,
                },
                Err(e) => WorkerConnections {
                    worker: h.id as u32,
                    capacity: h.stats.connection_capacity.load(Relaxed),
                    error: Some(e.to_string()),
                    ..WorkerConnections::default()
                },
            })
            .collect();
        query.truncate(&mut out);
        Ok(out)
    }

    fn nat_sessions(&self, query: &NatQuery) -> Result<Vec<WorkerNatSessions>, AdminError> {
        let snap = self.cell.load();
        let ov = &snap.overlay;
        let vpc_name = |vni: u32| {
            ov.by_vni
                .get(&vni)
                .and_then(|&i| ov.vpcs.get(usize::from(i)))
                .map(|v| v.name.clone())
        };
        let vpc = query.vni(ov.vpcs.iter().map(|v| (v.name.as_str(), v.vni)))?;
        let filter = NatFilter {
            vpc,
            ip: query.ip.map(u32::from),
            proto: query.protocol,
        };
        let asked = self
            .workers
            .iter()
            .map(|(h, _)| dump::ask_nat(&h.dumps, filter, query.limit))
            .collect();
        let answers = dump::collect(asked, DUMP_TIMEOUT);
        let mut out: Vec<WorkerNatSessions> = self
            .workers
            .iter()
            .zip(answers)
            .map(|((h, _), answer)| match answer {
                Ok(d) => WorkerNatSessions {
                    worker: h.id as u32,
                    enabled: d.enabled,
                    entries: d.entries,
                    capacity: d.capacity,
                    matched: d.matched,
                    sessions: d
                        .sessions
                        .iter()
                        .map(|r| NatSessionInfo::from_record(r, vpc_name(r.key.vpc)))
                        .collect(),
                    error: None,
                },
                Err(e) => {
                    let capacity = h.stats.nat_capacity.load(Relaxed);
                    WorkerNatSessions {
                        worker: h.id as u32,
                        enabled: capacity > 0,
                        capacity,
                        error: Some(e.to_string()),
                        ..WorkerNatSessions::default()
                    }
                }
            })
            .collect();
        query.truncate(&mut out);
        Ok(out)
    }

    fn overlay(&self) -> Result<OverlayInfo, AdminError> {
        Ok(overlay_info(&self.cell.load()))
    }

    fn vrrp(&self) -> Result<VrrpInfo, AdminError> {
        let Some(v) = &self.vrrp else {
            return Ok(VrrpInfo::default());
        };
        let t = lock(&self.tables);
        let v = lock(v);
        Ok(v.info(&t))
    }

    fn sync(&self) -> Result<Option<SyncInfo>, AdminError> {
        Ok(self
            .sync
            .as_ref()
            .map(|s| lock(s).info(self.started.elapsed())))
    }

    fn security_denials(&self) -> Result<Vec<DenialCount>, AdminError> {
        let snap = self.cell.load();
        let names = &snap.overlay.counters;
        let base = lock(&self.baseline);
        Ok((0..MAX_COUNTER_SLOTS)
            // Egress's default allows: its slot never counts a denial.
            .filter(|&slot| slot != usize::from(SLOT_DEFAULT_EGRESS_ALLOW))
            .filter_map(|slot| Some((slot, names.name(u16::try_from(slot).ok()?)?)))
            .map(|(slot, name)| DenialCount {
                rule: name.to_owned(),
                count: self
                    .workers
                    .iter()
                    .map(|(h, _)| {
                        let now = h.stats.sg_denies.get(slot).map_or(0, |c| c.load(Relaxed));
                        base.sg_denied(h.id, slot, now)
                    })
                    .sum(),
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

    fn capture(
        &self,
        query: crate::ctl::capture::CaptureQuery,
    ) -> Result<crate::ctl::capture::CaptureStart, AdminError> {
        let (host, ports) = self.host_and_ports();
        crate::ctl::capture::start(&self.capture, host, &ports, query)
    }

    fn trace_watch(
        &self,
        query: crate::ctl::watch::WatchQuery,
    ) -> Result<crate::ctl::watch::WatchStart, AdminError> {
        let (host, ports) = self.host_and_ports();
        let start = crate::ctl::watch::start(&self.watch, host, &ports, query)?;
        lock(&self.traces).open_watch(start.session.watch());
        tracing::info!(
            watch = start.session.watch(),
            filter = %start.query.filter_text,
            ports = ?start.ports,
            rate = start.query.rate,
            "trace watch started"
        );
        Ok(start)
    }

    fn watch_paths(&self, watch: u8, max: usize) -> Vec<aegis_api::dataplane::v1::WatchedPath> {
        let paths = lock(&self.traces).take_watched(watch, max);
        if paths.is_empty() {
            return Vec::new();
        }
        let snap = self.cell.load();
        paths
            .iter()
            .map(|(id, hops)| crate::ctl::watch::path_view(*id, hops, &snap))
            .collect()
    }

    fn watch_overwritten(&self, watch: u8) -> u64 {
        lock(&self.traces).watch_overwritten(watch)
    }

    fn watch_counters(&self) -> (u64, u64) {
        (self.watch.running() as u64, self.watch.traced_total())
    }

    fn end_watch(&self, watch: u8) {
        lock(&self.traces).close_watch(watch);
        tracing::info!(watch, "trace watch ended");
    }

    fn capture_counters(&self) -> crate::ctl::capture::CaptureCounters {
        crate::ctl::capture::CaptureCounters::of(&self.capture)
    }

    fn inject_probe(
        &self,
        query: crate::ctl::trace::ProbeQuery,
    ) -> Result<aegis_api::dataplane::v1::InjectProbeReply, AdminError> {
        let snap = self.cell.load();
        let fresh = {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now())
        };
        let p = crate::ctl::trace::prepare(&snap, &query, fresh)?;
        let Some((h, _)) = self.workers.first() else {
            return Err(AdminError::Internal("no worker runs".into()));
        };
        let inj = crate::worker::ProbeInjection {
            port: p.port,
            frame: p.frame,
            id: p.reply.trace_id,
        };
        if h.probes.push(inj).is_err() {
            return Err(AdminError::Internal(
                "the worker's probe queue is full; retry".into(),
            ));
        }
        tracing::info!(trace = format!("{:016x}", p.reply.trace_id), port = %p.reply.endpoint, "probe injected");
        Ok(p.reply)
    }

    fn trace_records(
        &self,
        id: u64,
    ) -> Result<aegis_api::dataplane::v1::TraceRecordsReply, AdminError> {
        let snap = self.cell.load();
        let mut store = lock(&self.traces);
        let hops = store.hops(id);
        let stats = store.stats();
        Ok(aegis_api::dataplane::v1::TraceRecordsReply {
            hops: hops
                .iter()
                .map(|h| crate::ctl::trace::hop_view(h, &snap))
                .collect(),
            applied_revision: snap.overlay.revision,
            records_lost: stats.lost,
            untraced: stats.slots_full,
        })
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

/// The name of the control-plane port bound to dataplane port `port`.
fn endpoint_on(snap: &Snapshot, port: u16) -> Option<&str> {
    let ov = &snap.overlay;
    ov.local_endpoint(port)
        .and_then(|e| ov.endpoint(e))
        .map(|e| e.name.as_str())
}

/// The conntrack zone (dataplane port index) named by `name`: a dataplane port, or a
/// control-plane port bound to one here.
fn zone_of(snap: &Snapshot, name: &str) -> Result<u16, AdminError> {
    if let Some(i) = snap.ports.iter().position(|p| p.name == name) {
        return u16::try_from(i).map_err(|_| AdminError::Internal("port index".into()));
    }
    match snap.overlay.endpoints.iter().find(|e| e.name == name) {
        Some(e) => match e.at {
            Location::Local(port) => Ok(port),
            Location::Remote(host) => Err(AdminError::not_found(
                "port",
                format!(
                    "VM port {name:?} is on another host ({}): its connections are tracked there",
                    Ipv4Addr::from(host)
                ),
            )),
            Location::Unplaced => Err(AdminError::not_found(
                "port",
                format!("VM port {name:?} is on no host"),
            )),
        },
        None => Err(AdminError::not_found(
            "port",
            format!("no dataplane port or VM port named {name:?}"),
        )),
    }
}

/// A worker's connection as the API reports it, its zone named after the snapshot.
fn connection_info(snap: &Snapshot, c: &ConnView) -> ConnectionInfo {
    let zone = c.flow.zone;
    ConnectionInfo {
        port: snap
            .ports
            .get(usize::from(zone))
            .map_or_else(|| format!("port{zone}"), |p| p.name.clone()),
        endpoint: endpoint_on(snap, zone).map(str::to_owned),
        protocol: c.flow.proto,
        src: Ipv4Addr::from(c.flow.src),
        src_port: c.flow.sport,
        dst: Ipv4Addr::from(c.flow.dst),
        dst_port: c.flow.dport,
        state: c.state,
        expires: Duration::from_nanos(c.expires_in_ns),
        packets: c.packets,
        bytes: c.bytes,
    }
}

fn cidr(p: &Prefix) -> Option<Ipv4Cidr> {
    Ipv4Cidr::new(p.addr(), p.length())
}

/// The overlay of `snap` as `show vpc` reports it: names instead of indexes, ports sorted
/// by name within their VPC.
fn overlay_info(snap: &Snapshot) -> OverlayInfo {
    let ov = &snap.overlay;
    let mut ports: Vec<Vec<VpcPortInfo>> = vec![Vec::new(); ov.vpcs.len()];
    for e in ov.endpoints.iter() {
        let Some(list) = ports.get_mut(usize::from(e.vpc)) else {
            continue;
        };
        let subnet = ov
            .vpcs
            .get(usize::from(e.vpc))
            .and_then(|v| v.subnets.get(usize::from(e.subnet)))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        list.push(VpcPortInfo {
            name: e.name.clone(),
            subnet,
            mac: e.mac,
            ips: e.ips.iter().map(|ip| Ipv4Addr::from(*ip)).collect(),
            location: match e.at {
                Location::Local(port) => PortLocation::Local(
                    snap.ports
                        .get(usize::from(port))
                        .map_or_else(|| format!("port{port}"), |p| p.name.clone()),
                ),
                Location::Remote(host) => PortLocation::Remote(Ipv4Addr::from(host)),
                Location::Unplaced => PortLocation::Unplaced,
            },
        });
    }
    OverlayInfo {
        revision: ov.revision,
        underlay_ip: ov.enabled().then(|| Ipv4Addr::from(ov.underlay_ip)),
        mtu: ov.mtu,
        vpcs: ov
            .vpcs
            .iter()
            .zip(ports)
            .map(|(v, mut ports)| {
                ports.sort_by(|a, b| a.name.cmp(&b.name));
                VpcInfo {
                    name: v.name.clone(),
                    vni: v.vni,
                    subnets: v
                        .subnets
                        .iter()
                        .filter_map(|s| {
                            Some(VpcSubnetInfo {
                                name: s.name.clone(),
                                cidr: cidr(&s.prefix)?,
                                gateway: Ipv4Addr::from(s.gateway),
                            })
                        })
                        .collect(),
                    routes: v
                        .routes
                        .iter()
                        .filter_map(|r| {
                            Some(VpcRouteInfo {
                                prefix: cidr(&r.prefix)?,
                                target: match r.target {
                                    VpcTarget::Endpoint(e) => VpcRouteTarget::Port(
                                        ov.endpoint(e)
                                            .map_or_else(|| format!("#{e}"), |e| e.name.clone()),
                                    ),
                                    VpcTarget::NextHopUnknown => VpcRouteTarget::NextHopUnknown,
                                    VpcTarget::Blackhole => VpcRouteTarget::Blackhole,
                                    VpcTarget::Unreachable => VpcRouteTarget::Unreachable,
                                },
                            })
                        })
                        .collect(),
                    ports,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::overlay::host_snapshot;

    #[test]
    fn overlay_info_names_everything() {
        let snap = host_snapshot("a", &crate::testkit::overlay::objects());
        let o = overlay_info(&snap);
        assert_eq!(o.revision, 7);
        assert_eq!(o.underlay_ip, Some(Ipv4Addr::new(10, 88, 0, 11)));
        let blue = o.vpcs.iter().find(|v| v.name == "blue").unwrap();
        assert_eq!(blue.vni, 100);
        let subnets: Vec<String> = blue
            .subnets
            .iter()
            .map(|s| format!("{} {} {}", s.name, s.cidr, s.gateway))
            .collect();
        assert_eq!(
            subnets,
            ["blue-a 10.1.1.0/24 10.1.1.1", "blue-b 10.1.2.0/24 10.1.2.1"]
        );
        let ports: Vec<(&str, &str, &PortLocation)> = blue
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.subnet.as_str(), &p.location))
            .collect();
        assert_eq!(
            ports,
            [
                ("b1", "blue-a", &PortLocation::Local("vm1".into())),
                (
                    "b2",
                    "blue-a",
                    &PortLocation::Remote(Ipv4Addr::new(10, 88, 0, 12))
                ),
                ("b3", "blue-b", &PortLocation::Local("vm2".into())),
            ]
        );
        assert_eq!(endpoint_on(&snap, 1), Some("b1"));
        assert_eq!(endpoint_on(&snap, 0), None);
        assert_eq!(zone_of(&snap, "vm2").unwrap(), 2);
        assert_eq!(zone_of(&snap, "b3").unwrap(), 2);
        let e = zone_of(&snap, "b2").unwrap_err();
        assert!(e.to_string().contains("10.88.0.12"), "{e}");
        assert!(zone_of(&snap, "nope").is_err());
    }
}
