//! An in-memory [`AdminBackend`]: ports, addresses, static routes, neighbours and counters
//! kept in plain collections behind a mutex, with the same validation rules the dataplane
//! applies; connections, the overlay and security-group denials are whatever a test
//! injects; packet captures run on a [`CaptureHub`] whose "workers" are the test, which
//! offers packets with [`MemoryBackend::capture_packet`]. It serves the admin API without DPDK (tests of the server, of `aegisctl`, of
//! the metrics endpoint) and is the reference for what a backend must do.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::backend::{AdminBackend, AdminError};
use super::capture::{CaptureQuery, CaptureStart};
use super::cidr::{format_mac, Ipv4Cidr};
use super::types::{
    ConnQuery, ConnectionInfo, ControlPlaneStatus, DenialCount, ErrorCount, InterfaceInfo,
    NatQuery, NatSessionInfo, NeighbourInfo, NodeRuntime, OverlayInfo, PollMode, PortCounters,
    RouteInfo, RouteKind, RouteOrigin, RouteSpec, RouteTarget, Status, SyncInfo, VrrpInfo,
    WorkerConnections, WorkerErrors, WorkerInfo, WorkerNatSessions, WorkerRuntime,
};
use crate::capture::{CaptureHub, Point, TapCommand, Taps};
use crate::worker::Clock;

/// The in-memory backend.
pub struct MemoryBackend {
    started: Instant,
    state: Mutex<State>,
    capture: Arc<CaptureHub>,
    /// Each worker's capture queue and taps (served by [`MemoryBackend::capture_packet`]).
    taps: Mutex<Vec<(Arc<ArrayQueue<TapCommand>>, Taps)>>,
}

/// Host name the in-memory backend puts in captures.
pub const MEMORY_HOST: &str = "memory-host";

struct State {
    revision: u64,
    poll_mode: PollMode,
    ports: Vec<InterfaceInfo>,
    static_routes: BTreeMap<Ipv4Cidr, RouteTarget>,
    neighbours: Vec<NeighbourInfo>,
    /// Node names, in first-recorded order.
    nodes: Vec<String>,
    /// Drop reasons (name, description), in first-recorded order.
    reasons: Vec<(String, String)>,
    workers: Vec<WorkerState>,
    overlay: OverlayInfo,
    /// Security-group denial counters (name, count), in first-recorded order.
    denials: Vec<(String, u64)>,
    vrrp: VrrpInfo,
    sync: Option<SyncInfo>,
    controlplane: Option<ControlPlaneStatus>,
}

struct WorkerState {
    info: WorkerInfo,
    polls: u64,
    idle_polls: u64,
    sleeps: u64,
    /// (calls, vectors, clocks) per entry of `State::nodes`.
    nodes: Vec<[u64; 3]>,
    /// Count per entry of `State::reasons`.
    drops: Vec<u64>,
    /// Its connection table's entries.
    connections: Vec<ConnectionInfo>,
    /// Its connection table's capacity.
    connection_capacity: u64,
    /// Its NAT sessions and their table's capacity, if it runs NAT.
    nat: Option<(u64, Vec<NatSessionInfo>)>,
    /// Set: the worker "does not answer" dumps, with this error.
    dump_error: Option<String>,
}

impl MemoryBackend {
    /// A backend with the given workers, no ports and no routes, at revision 1.
    pub fn new(poll_mode: PollMode, workers: &[WorkerInfo]) -> Self {
        let queues: Vec<_> = (0..workers.len().max(1))
            .map(|_| CaptureHub::queue())
            .collect();
        MemoryBackend {
            capture: CaptureHub::new(queues.clone(), Clock::monotonic()),
            taps: Mutex::new(queues.into_iter().map(|q| (q, Taps::default())).collect()),
            started: Instant::now(),
            state: Mutex::new(State {
                revision: 1,
                poll_mode,
                ports: Vec::new(),
                static_routes: BTreeMap::new(),
                neighbours: Vec::new(),
                nodes: Vec::new(),
                reasons: Vec::new(),
                workers: workers
                    .iter()
                    .map(|&info| WorkerState {
                        info,
                        polls: 0,
                        idle_polls: 0,
                        sleeps: 0,
                        nodes: Vec::new(),
                        drops: Vec::new(),
                        connections: Vec::new(),
                        connection_capacity: 0,
                        nat: None,
                        dump_error: None,
                    })
                    .collect(),
                overlay: OverlayInfo::default(),
                denials: Vec::new(),
                vrrp: VrrpInfo::default(),
                sync: None,
                controlplane: None,
            }),
        }
    }

    /// Adds a port (admin up, link up at `link_speed_mbps`, no addresses) and returns its
    /// index. `AlreadyExists` if the name is taken.
    pub fn add_port(
        &self,
        name: &str,
        devargs: &str,
        mac: [u8; 6],
        mtu: u16,
        link_speed_mbps: u32,
    ) -> Result<u16, AdminError> {
        let mut s = self.lock()?;
        if s.ports.iter().any(|p| p.name == name) {
            return Err(AdminError::exists("port", format!("{name:?} exists")));
        }
        let index = u16::try_from(s.ports.len())
            .map_err(|_| AdminError::invalid("port", "too many ports"))?;
        s.ports.push(InterfaceInfo {
            index,
            name: name.to_string(),
            devargs: devargs.to_string(),
            mac,
            mtu,
            admin_up: true,
            link_up: true,
            link_speed_mbps,
            addresses: Vec::new(),
            counters: PortCounters::default(),
            endpoint: None,
        });
        Ok(index)
    }

    /// Acts as worker `worker` of a dataplane: takes the capture starts and stops waiting
    /// for it, then offers `data`, seen at `point` on port `port`, to its captures.
    pub fn capture_packet(
        &self,
        worker: usize,
        point: Point,
        port: u16,
        data: &[u8],
    ) -> Result<(), AdminError> {
        let mut taps = self
            .taps
            .lock()
            .map_err(|_| AdminError::Internal("capture taps lock poisoned".into()))?;
        let (queue, taps) = taps
            .get_mut(worker)
            .ok_or_else(|| AdminError::not_found("worker", format!("no worker {worker}")))?;
        while let Some(cmd) = queue.pop() {
            taps.apply(cmd);
        }
        taps.capture(point, port, data, Clock::monotonic().now_ns());
        Ok(())
    }

    /// Captures running.
    pub fn captures_running(&self) -> usize {
        self.capture.running()
    }

    /// Binds the control-plane port `endpoint` to `port` (`None` unbinds).
    pub fn bind_endpoint(&self, port: &str, endpoint: Option<&str>) -> Result<(), AdminError> {
        self.lock()?.port_mut(port)?.endpoint = endpoint.map(str::to_string);
        Ok(())
    }

    /// Replaces worker `worker`'s connection table with `connections`, of `capacity`.
    pub fn set_connections(
        &self,
        worker: u32,
        capacity: u64,
        connections: Vec<ConnectionInfo>,
    ) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        let w = s.worker_mut(worker)?;
        w.connections = connections;
        w.connection_capacity = capacity;
        Ok(())
    }

    /// Makes worker `worker` a NAT worker holding `sessions` in a table of `capacity`.
    pub fn set_nat_sessions(
        &self,
        worker: u32,
        capacity: u64,
        sessions: Vec<NatSessionInfo>,
    ) -> Result<(), AdminError> {
        self.lock()?.worker_mut(worker)?.nat = Some((capacity, sessions));
        Ok(())
    }

    /// Makes worker `worker` fail connection dumps with `error` (`None`: answer again).
    pub fn fail_dumps(&self, worker: u32, error: Option<&str>) -> Result<(), AdminError> {
        self.lock()?.worker_mut(worker)?.dump_error = error.map(str::to_string);
        Ok(())
    }

    /// Sets the control-plane feed `show status` reports (`None`: no feed).
    pub fn set_controlplane(&self, status: Option<ControlPlaneStatus>) -> Result<(), AdminError> {
        self.lock()?.controlplane = status;
        Ok(())
    }

    /// Replaces the overlay `show vpc` reports.
    pub fn set_overlay(&self, overlay: OverlayInfo) -> Result<(), AdminError> {
        self.lock()?.overlay = overlay;
        Ok(())
    }

    /// Sets what `show sync` reports.
    pub fn set_sync(&self, info: Option<SyncInfo>) {
        if let Ok(mut s) = self.lock() {
            s.sync = info;
        }
    }

    /// Sets what `show vrrp` reports.
    pub fn set_vrrp(&self, info: VrrpInfo) {
        if let Ok(mut s) = self.lock() {
            s.vrrp = info;
        }
    }

    /// Adds `count` denials to the counter `rule` (registered on first use, so 0 declares it).
    pub fn count_denial(&self, rule: &str, count: u64) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        match s.denials.iter_mut().find(|(r, _)| r == rule) {
            Some((_, n)) => *n += count,
            None => s.denials.push((rule.to_string(), count)),
        }
        Ok(())
    }

    /// Sets a port's link (operational) state.
    pub fn set_link(&self, port: &str, up: bool, speed_mbps: u32) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        let p = s.port_mut(port)?;
        p.link_up = up;
        p.link_speed_mbps = if up { speed_mbps } else { 0 };
        Ok(())
    }

    /// Adds `delta` to a port's counters.
    pub fn count_port(&self, port: &str, delta: PortCounters) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        let c = &mut s.port_mut(port)?.counters;
        c.rx_packets += delta.rx_packets;
        c.rx_bytes += delta.rx_bytes;
        c.tx_packets += delta.tx_packets;
        c.tx_bytes += delta.tx_bytes;
        c.rx_missed += delta.rx_missed;
        c.rx_errors += delta.rx_errors;
        c.tx_errors += delta.tx_errors;
        c.rx_nombuf += delta.rx_nombuf;
        Ok(())
    }

    /// Adds poll-loop counts to a worker.
    pub fn count_polls(
        &self,
        worker: u32,
        polls: u64,
        idle_polls: u64,
        sleeps: u64,
    ) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        let w = s.worker_mut(worker)?;
        w.polls += polls;
        w.idle_polls += idle_polls;
        w.sleeps += sleeps;
        Ok(())
    }

    /// Adds dispatch counts for `node` on `worker` (the node is registered on first use).
    pub fn count_node(
        &self,
        worker: u32,
        node: &str,
        calls: u64,
        vectors: u64,
        clocks: u64,
    ) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        s.worker_mut(worker)?;
        let i = match s.nodes.iter().position(|n| n == node) {
            Some(i) => i,
            None => {
                s.nodes.push(node.to_string());
                s.nodes.len() - 1
            }
        };
        let w = s.worker_mut(worker)?;
        if w.nodes.len() <= i {
            w.nodes.resize(i + 1, [0; 3]);
        }
        let n = &mut w.nodes[i];
        n[0] += calls;
        n[1] += vectors;
        n[2] += clocks;
        Ok(())
    }

    /// Registers a drop reason (reported with count 0 until counted).
    pub fn declare_reason(&self, reason: &str, description: &str) -> Result<(), AdminError> {
        self.lock()?.reason_index(reason, description);
        Ok(())
    }

    /// Counts `count` drops for `reason` on `worker` (registering the reason on first use).
    pub fn count_drop(
        &self,
        worker: u32,
        reason: &str,
        description: &str,
        count: u64,
    ) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        s.worker_mut(worker)?;
        let i = s.reason_index(reason, description);
        let w = s.worker_mut(worker)?;
        if w.drops.len() <= i {
            w.drops.resize(i + 1, 0);
        }
        w.drops[i] += count;
        Ok(())
    }

    /// Inserts or replaces the neighbour entry for (`n.port`, `n.ip`).
    pub fn set_neighbour(&self, n: NeighbourInfo) -> Result<(), AdminError> {
        let mut s = self.lock()?;
        s.port(&n.port)?;
        s.neighbours.retain(|e| !(e.port == n.port && e.ip == n.ip));
        s.neighbours.push(n);
        s.neighbours
            .sort_by(|a, b| (&a.port, a.ip).cmp(&(&b.port, b.ip)));
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, AdminError> {
        self.state
            .lock()
            .map_err(|_| AdminError::Internal("in-memory backend state poisoned".into()))
    }
}

impl State {
    fn port(&self, name: &str) -> Result<&InterfaceInfo, AdminError> {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| AdminError::not_found("port", format!("no port named {name:?}")))
    }

    fn port_mut(&mut self, name: &str) -> Result<&mut InterfaceInfo, AdminError> {
        self.ports
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| AdminError::not_found("port", format!("no port named {name:?}")))
    }

    fn worker_mut(&mut self, id: u32) -> Result<&mut WorkerState, AdminError> {
        self.workers
            .iter_mut()
            .find(|w| w.info.id == id)
            .ok_or_else(|| AdminError::not_found("worker", format!("no worker {id}")))
    }

    fn reason_index(&mut self, reason: &str, description: &str) -> usize {
        match self.reasons.iter().position(|(r, _)| r == reason) {
            Some(i) => i,
            None => {
                self.reasons
                    .push((reason.to_string(), description.to_string()));
                self.reasons.len() - 1
            }
        }
    }

    /// Routes that follow from interface addresses: the subnet (unless /32) and a local /32.
    fn connected_routes(&self) -> Vec<RouteInfo> {
        let mut routes = Vec::new();
        for p in &self.ports {
            for a in &p.addresses {
                if a.prefix_len() < 32 {
                    routes.push(RouteInfo {
                        prefix: a.network(),
                        kind: RouteKind::Connected,
                        next_hop: None,
                        port: Some(p.name.clone()),
                        origin: RouteOrigin::Connected,
                    });
                }
                routes.push(RouteInfo {
                    prefix: Ipv4Cidr::host(a.addr()),
                    kind: RouteKind::Local,
                    next_hop: None,
                    port: Some(p.name.clone()),
                    origin: RouteOrigin::Connected,
                });
            }
        }
        routes
    }

    /// The port whose connected subnet holds `ip` (longest prefix wins).
    fn port_for(&self, ip: Ipv4Addr) -> Option<&InterfaceInfo> {
        self.ports
            .iter()
            .flat_map(|p| p.addresses.iter().map(move |a| (p, a)))
            .filter(|(_, a)| a.prefix_len() < 32 && a.contains(ip))
            .max_by_key(|(_, a)| a.prefix_len())
            .map(|(p, _)| p)
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.ports
            .iter()
            .any(|p| p.addresses.iter().any(|a| a.addr() == ip))
    }

    fn static_route(&self, prefix: Ipv4Cidr, target: &RouteTarget) -> RouteInfo {
        let (kind, next_hop, port) = match target {
            RouteTarget::Via(gw) => (
                RouteKind::Gateway,
                Some(*gw),
                self.port_for(*gw).map(|p| p.name.clone()),
            ),
            RouteTarget::Port(p) => (RouteKind::Connected, None, Some(p.clone())),
            RouteTarget::Blackhole => (RouteKind::Blackhole, None, None),
            RouteTarget::Unreachable => (RouteKind::Unreachable, None, None),
        };
        RouteInfo {
            prefix,
            kind,
            next_hop,
            port,
            origin: RouteOrigin::Static,
        }
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }
}

impl AdminBackend for MemoryBackend {
    fn status(&self) -> Result<Status, AdminError> {
        let s = self.lock()?;
        Ok(Status {
            revision: s.revision,
            uptime: self.started.elapsed(),
            poll_mode: s.poll_mode,
            workers: s.workers.iter().map(|w| w.info).collect(),
            controlplane: s.controlplane.clone(),
        })
    }

    fn interfaces(&self) -> Result<Vec<InterfaceInfo>, AdminError> {
        Ok(self.lock()?.ports.clone())
    }

    fn runtime(&self) -> Result<Vec<WorkerRuntime>, AdminError> {
        let s = self.lock()?;
        Ok(s.workers
            .iter()
            .map(|w| WorkerRuntime {
                id: w.info.id,
                lcore: w.info.lcore,
                polls: w.polls,
                idle_polls: w.idle_polls,
                sleeps: w.sleeps,
                consumed: 0,
                icmp_sent: 0,
                icmp_rate_limited: 0,
                connections: w.connections.len() as u64,
                connection_capacity: w.connection_capacity,
                nat_sessions: 0,
                nat_sessions_revoked: 0,
                nodes: s
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let [calls, vectors, clocks] = w.nodes.get(i).copied().unwrap_or_default();
                        NodeRuntime {
                            name: name.clone(),
                            calls,
                            vectors,
                            clocks,
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    fn errors(&self) -> Result<Vec<WorkerErrors>, AdminError> {
        let s = self.lock()?;
        Ok(s.workers
            .iter()
            .map(|w| WorkerErrors {
                worker: w.info.id,
                counts: s
                    .reasons
                    .iter()
                    .enumerate()
                    .map(|(i, (reason, description))| ErrorCount {
                        reason: reason.clone(),
                        description: description.clone(),
                        count: w.drops.get(i).copied().unwrap_or(0),
                    })
                    .collect(),
            })
            .collect())
    }

    fn routes(&self) -> Result<Vec<RouteInfo>, AdminError> {
        let s = self.lock()?;
        let mut routes = s.connected_routes();
        routes.extend(
            s.static_routes
                .iter()
                .map(|(prefix, target)| s.static_route(*prefix, target)),
        );
        routes.sort_by_key(|r| (r.prefix, r.origin));
        Ok(routes)
    }

    fn neighbours(&self) -> Result<Vec<NeighbourInfo>, AdminError> {
        Ok(self.lock()?.neighbours.clone())
    }

    fn connections(&self, query: &ConnQuery) -> Result<Vec<WorkerConnections>, AdminError> {
        let s = self.lock()?;
        if let Some(p) = &query.port {
            let known = s
                .ports
                .iter()
                .any(|i| i.name == *p || i.endpoint.as_ref() == Some(p));
            if !known {
                return Err(AdminError::not_found(
                    "port",
                    format!("no dataplane port or local VM port named {p:?}"),
                ));
            }
        }
        let mut out: Vec<WorkerConnections> = s
            .workers
            .iter()
            .map(|w| {
                if let Some(e) = &w.dump_error {
                    return WorkerConnections {
                        worker: w.info.id,
                        error: Some(e.clone()),
                        ..WorkerConnections::default()
                    };
                }
                let matching: Vec<ConnectionInfo> = w
                    .connections
                    .iter()
                    .filter(|c| query.matches(c))
                    .cloned()
                    .collect();
                WorkerConnections {
                    worker: w.info.id,
                    entries: w.connections.len() as u64,
                    capacity: w.connection_capacity,
                    matched: matching.len() as u64,
                    connections: matching,
                    error: None,
                }
            })
            .collect();
        query.truncate(&mut out);
        Ok(out)
    }

    fn nat_sessions(&self, query: &NatQuery) -> Result<Vec<WorkerNatSessions>, AdminError> {
        let s = self.lock()?;
        let vni = query.vni(s.overlay.vpcs.iter().map(|v| (v.name.as_str(), v.vni)))?;
        let mut out: Vec<WorkerNatSessions> = s
            .workers
            .iter()
            .map(|w| {
                if let Some(e) = &w.dump_error {
                    return WorkerNatSessions {
                        worker: w.info.id,
                        error: Some(e.clone()),
                        ..WorkerNatSessions::default()
                    };
                }
                let Some((capacity, sessions)) = &w.nat else {
                    return WorkerNatSessions {
                        worker: w.info.id,
                        ..WorkerNatSessions::default()
                    };
                };
                let matching: Vec<NatSessionInfo> = sessions
                    .iter()
                    .filter(|x| x.matches(query, vni))
                    .cloned()
                    .collect();
                WorkerNatSessions {
                    worker: w.info.id,
                    enabled: true,
                    entries: sessions.len() as u64,
                    capacity: *capacity,
                    matched: matching.len() as u64,
                    sessions: matching,
                    error: None,
                }
            })
            .collect();
        query.truncate(&mut out);
        Ok(out)
    }

    fn overlay(&self) -> Result<OverlayInfo, AdminError> {
        Ok(self.lock()?.overlay.clone())
    }

    fn security_denials(&self) -> Result<Vec<DenialCount>, AdminError> {
        Ok(self
            .lock()?
            .denials
            .iter()
            .map(|(rule, count)| DenialCount {
                rule: rule.clone(),
                count: *count,
            })
            .collect())
    }

    fn vrrp(&self) -> Result<VrrpInfo, AdminError> {
        Ok(self.lock()?.vrrp.clone())
    }

    fn sync(&self) -> Result<Option<SyncInfo>, AdminError> {
        Ok(self.lock()?.sync.clone())
    }

    fn add_route(&self, route: RouteSpec) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        let prefix = route.prefix;
        if s.static_routes.contains_key(&prefix) {
            return Err(AdminError::exists(
                "prefix",
                format!("a static route for {prefix} exists"),
            ));
        }
        if let Some(r) = s.connected_routes().iter().find(|r| r.prefix == prefix) {
            let port = r.port.as_deref().unwrap_or("?");
            return Err(AdminError::exists(
                "prefix",
                format!("{prefix} is a connected route of {port}"),
            ));
        }
        match &route.target {
            RouteTarget::Via(gw) => {
                if s.is_local(*gw) {
                    return Err(AdminError::invalid(
                        "via",
                        format!("{gw} is one of our own addresses"),
                    ));
                }
                if s.port_for(*gw).is_none() {
                    return Err(AdminError::invalid(
                        "via",
                        format!("{gw} is not on a connected subnet"),
                    ));
                }
            }
            RouteTarget::Port(p) => {
                s.port(p)?;
            }
            RouteTarget::Blackhole | RouteTarget::Unreachable => {}
        }
        s.static_routes.insert(prefix, route.target);
        Ok(s.bump())
    }

    fn delete_route(&self, prefix: Ipv4Cidr) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        if s.static_routes.remove(&prefix).is_some() {
            return Ok(s.bump());
        }
        match s.connected_routes().iter().find(|r| r.prefix == prefix) {
            Some(r) => Err(AdminError::invalid(
                "prefix",
                format!(
                    "{prefix} is a connected route of {}; delete the address instead",
                    r.port.as_deref().unwrap_or("?")
                ),
            )),
            None => Err(AdminError::not_found(
                "prefix",
                format!("no static route for {prefix}"),
            )),
        }
    }

    fn add_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        s.port(&port)?;
        if let Some(owner) = s
            .ports
            .iter()
            .find(|p| p.addresses.iter().any(|a| a.addr() == address.addr()))
        {
            return Err(AdminError::exists(
                "address",
                format!("{} is already configured on {}", address.addr(), owner.name),
            ));
        }
        let mut new_prefixes = vec![Ipv4Cidr::host(address.addr())];
        if address.prefix_len() < 32 {
            new_prefixes.push(address.network());
        }
        for prefix in &new_prefixes {
            if let Some(r) = s.connected_routes().iter().find(|r| r.prefix == *prefix) {
                return Err(AdminError::invalid(
                    "address",
                    format!(
                        "{prefix} is already connected on {}",
                        r.port.as_deref().unwrap_or("?")
                    ),
                ));
            }
            if s.static_routes.contains_key(prefix) {
                return Err(AdminError::invalid(
                    "address",
                    format!("{prefix} has a static route; delete it first"),
                ));
            }
        }
        s.port_mut(&port)?.addresses.push(address);
        Ok(s.bump())
    }

    fn delete_address(&self, port: String, address: Ipv4Cidr) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        let p = s.port_mut(&port)?;
        let before = p.addresses.len();
        p.addresses.retain(|a| *a != address);
        if p.addresses.len() == before {
            return Err(AdminError::not_found(
                "address",
                format!("{port} has no address {address}"),
            ));
        }
        Ok(s.bump())
    }

    fn set_port_state(&self, port: String, up: bool) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        let p = s.port_mut(&port)?;
        if p.admin_up == up {
            return Ok(s.revision);
        }
        p.admin_up = up;
        Ok(s.bump())
    }

    fn capture(&self, query: CaptureQuery) -> Result<CaptureStart, AdminError> {
        let ports: Vec<String> = self.lock()?.ports.iter().map(|p| p.name.clone()).collect();
        super::capture::start(&self.capture, MEMORY_HOST.to_string(), &ports, query)
    }

    fn capture_counters(&self) -> super::capture::CaptureCounters {
        super::capture::CaptureCounters::of(&self.capture)
    }

    fn clear_counters(&self) -> Result<u64, AdminError> {
        let mut s = self.lock()?;
        for p in &mut s.ports {
            p.counters = PortCounters::default();
        }
        for w in &mut s.workers {
            w.polls = 0;
            w.idle_polls = 0;
            w.sleeps = 0;
            w.nodes.iter_mut().for_each(|n| *n = [0; 3]);
            w.drops.iter_mut().for_each(|d| *d = 0);
        }
        s.denials.iter_mut().for_each(|(_, n)| *n = 0);
        Ok(s.revision)
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MemoryBackend");
        if let Ok(s) = self.state.lock() {
            d.field("revision", &s.revision).field(
                "ports",
                &s.ports
                    .iter()
                    .map(|p| format!("{} {}", p.name, format_mac(&p.mac)))
                    .collect::<Vec<_>>(),
            );
        }
        d.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn backend() -> MemoryBackend {
        let b = MemoryBackend::new(PollMode::Adaptive, &[WorkerInfo { id: 0, lcore: 1 }]);
        b.add_port("eth0", "net_null0", [2, 0, 0, 0, 0, 1], 1500, 10_000)
            .unwrap();
        b.add_port("eth1", "net_null1", [2, 0, 0, 0, 0, 2], 1500, 10_000)
            .unwrap();
        b.add_address("eth0".into(), cidr("10.0.1.1/24")).unwrap();
        b
    }

    fn route(prefix: &str, target: RouteTarget) -> RouteSpec {
        RouteSpec {
            prefix: cidr(prefix),
            target,
        }
    }

    #[test]
    fn connected_and_static_routes() {
        let b = backend();
        let gw = Ipv4Addr::new(10, 0, 1, 2);
        let rev = b
            .add_route(route("10.9.0.0/16", RouteTarget::Via(gw)))
            .unwrap();
        assert_eq!(rev, 3);
        let routes = b.routes().unwrap();
        let show: Vec<_> = routes
            .iter()
            .map(|r| (r.prefix.to_string(), r.kind, r.port.clone()))
            .collect();
        assert_eq!(
            show,
            [
                (
                    "10.0.1.0/24".into(),
                    RouteKind::Connected,
                    Some("eth0".into())
                ),
                ("10.0.1.1/32".into(), RouteKind::Local, Some("eth0".into())),
                (
                    "10.9.0.0/16".into(),
                    RouteKind::Gateway,
                    Some("eth0".into())
                ),
            ]
        );
        assert_eq!(routes[2].next_hop, Some(gw));
        assert_eq!(b.delete_route(cidr("10.9.0.0/16")).unwrap(), 4);
        assert_eq!(b.routes().unwrap().len(), 2);
    }

    #[test]
    fn route_validation() {
        let b = backend();
        let via = |a, b2, c, d| RouteTarget::Via(Ipv4Addr::new(a, b2, c, d));
        let err = b
            .add_route(route("10.9.0.0/16", via(10, 0, 2, 1)))
            .unwrap_err();
        assert!(
            matches!(err, AdminError::InvalidArgument { field: "via", .. }),
            "{err}"
        );
        let err = b
            .add_route(route("10.9.0.0/16", via(10, 0, 1, 1)))
            .unwrap_err();
        assert!(
            matches!(err, AdminError::InvalidArgument { field: "via", .. }),
            "{err}"
        );
        let err = b
            .add_route(route("10.9.0.0/16", RouteTarget::Port("eth9".into())))
            .unwrap_err();
        assert!(
            matches!(err, AdminError::NotFound { field: "port", .. }),
            "{err}"
        );
        let err = b
            .add_route(route("10.0.1.0/24", RouteTarget::Blackhole))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::AlreadyExists {
                    field: "prefix",
                    ..
                }
            ),
            "{err}"
        );
        b.add_route(route("192.0.2.0/24", RouteTarget::Unreachable))
            .unwrap();
        let err = b
            .add_route(route("192.0.2.0/24", RouteTarget::Blackhole))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::AlreadyExists {
                    field: "prefix",
                    ..
                }
            ),
            "{err}"
        );
        let err = b.delete_route(cidr("10.0.1.0/24")).unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::InvalidArgument {
                    field: "prefix",
                    ..
                }
            ),
            "{err}"
        );
        let err = b.delete_route(cidr("198.51.100.0/24")).unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::NotFound {
                    field: "prefix",
                    ..
                }
            ),
            "{err}"
        );
        // Nothing failed above changed the revision.
        assert_eq!(b.status().unwrap().revision, 3);
    }

    #[test]
    fn addresses_and_port_state() {
        let b = backend();
        let err = b
            .add_address("eth1".into(), cidr("10.0.1.1/24"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::AlreadyExists {
                    field: "address",
                    ..
                }
            ),
            "{err}"
        );
        let err = b
            .add_address("eth1".into(), cidr("10.0.1.9/24"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::InvalidArgument {
                    field: "address",
                    ..
                }
            ),
            "{err}"
        );
        let err = b
            .add_address("eth7".into(), cidr("10.0.7.1/24"))
            .unwrap_err();
        assert!(
            matches!(err, AdminError::NotFound { field: "port", .. }),
            "{err}"
        );
        assert_eq!(
            b.add_address("eth1".into(), cidr("10.0.2.1/24")).unwrap(),
            3
        );
        let err = b
            .delete_address("eth1".into(), cidr("10.0.2.1/25"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::NotFound {
                    field: "address",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            b.delete_address("eth1".into(), cidr("10.0.2.1/24"))
                .unwrap(),
            4
        );
        assert_eq!(b.set_port_state("eth1".into(), false).unwrap(), 5);
        assert_eq!(b.set_port_state("eth1".into(), false).unwrap(), 5);
        assert!(!b.interfaces().unwrap()[1].admin_up);
    }

    #[test]
    fn counters_and_clear() {
        let b = backend();
        b.declare_reason("port_down", "Egress port is down.")
            .unwrap();
        b.count_drop(0, "no_route", "No route.", 5).unwrap();
        b.count_node(0, "ip4-lookup", 2, 64, 6400).unwrap();
        b.count_polls(0, 10, 8, 1).unwrap();
        let rx = PortCounters {
            rx_packets: 64,
            ..PortCounters::default()
        };
        b.count_port("eth0", rx).unwrap();
        assert!(b.count_drop(3, "no_route", "No route.", 1).is_err());
        let errors = b.errors().unwrap();
        let counts: Vec<_> = errors[0]
            .counts
            .iter()
            .map(|c| (c.reason.as_str(), c.count))
            .collect();
        assert_eq!(counts, [("port_down", 0), ("no_route", 5)]);
        assert_eq!(b.runtime().unwrap()[0].nodes[0].vectors, 64);
        assert_eq!(b.interfaces().unwrap()[0].counters.rx_packets, 64);
        assert_eq!(b.clear_counters().unwrap(), 2);
        assert_eq!(b.errors().unwrap()[0].counts[1].count, 0);
        let rt = &b.runtime().unwrap()[0];
        assert_eq!((rt.polls, rt.nodes[0].calls), (0, 0));
        assert_eq!(b.interfaces().unwrap()[0].counters, PortCounters::default());
    }
}
