//! [`Tables`]: the control thread's forwarding state. It holds the desired configuration
//! (ports, addresses, static routes, static neighbours), derives the FIB from it — connected
//! routes and local /32s from addresses, static routes, gateways resolved to their port
//! through the connected routes — keeps the deduplicated adjacency list and the neighbour
//! table, and builds [`Snapshot`]s for the workers.
//!
//! Every change is validated first and applied whole or not at all: a method that returns
//! an error has changed nothing. Successful changes return the new revision. Snapshots
//! share every part that did not change since the previous one (a neighbour update does not
//! copy the FIB; a route change copies only the FIB chunks it touches).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::adjacency::{AdjKey, AdjacencyTable};
use super::error::StateError;
use super::forwarding::{
    not_unicast, reserved_in_subnet, ForwardingConfig, IfAddr, PortConfig, RouteConfig,
    RouteTarget, StaticNeighbour, MTU_RANGE,
};
use super::mac::{is_unicast, MacDisplay};
use super::neighbour::{NeighbourAction, NeighbourConfig, NeighbourState, NeighbourTable};
use super::{Adjacency, Mac, PortView, Snapshot};
use crate::fib::{Fib, FibError, Prefix};

/// The control thread's forwarding tables; see the module documentation.
#[derive(Debug, Clone)]
pub struct Tables {
    pub(super) ports: Vec<Port>,
    pub(super) statics: BTreeMap<Prefix, Static>,
    pub(super) connected: BTreeMap<Prefix, Connected>,
    pub(super) locals: BTreeMap<Ipv4Addr, u16>,
    pub(super) fib: Arc<Fib>,
    pub(super) adj: AdjacencyTable,
    pub(super) neigh: NeighbourTable,
    /// Static routes that came from the control plane (listed with their own origin).
    pub(super) controlplane_routes: BTreeSet<Prefix>,
    /// The overlay (VPC routers, ports, security groups) from the control plane.
    pub(super) overlay: Arc<crate::overlay::Overlay>,
    /// NAT as workers use it: host.toml's `[nat]` plus the control plane's rules.
    pub(super) nat: Arc<crate::nat::NatConfig>,
    /// host.toml's `[nat]` alone.
    pub(super) local_nat: Arc<crate::nat::NatConfig>,
    /// The control plane's NAT rules and floating IPs (a gateway group's member).
    pub(super) controlplane_nat: Option<crate::nat::NatConfig>,
    /// The control plane's NAT objects left out of `nat` (logged when they appeared).
    pub(super) nat_conflicts: Vec<crate::nat::NatConflict>,
    /// Neighbour generation already counted in `revision`.
    neigh_gen: u64,
    revision: u64,
    /// Revision of the last snapshot built.
    published: u64,
    cache: Cache,
}

#[derive(Debug, Clone)]
pub(super) struct Port {
    pub(super) name: String,
    pub(super) mac: Option<Mac>,
    pub(super) mtu: u16,
    pub(super) up: bool,
    pub(super) addrs: Vec<IfAddr>,
    pub(super) vrrp: bool,
    pub(super) vmacs: Vec<(Ipv4Addr, Mac)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Static {
    pub(super) target: RouteTarget,
    pub(super) adj: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Connected {
    pub(super) port: u16,
    /// Addresses on the port in this subnet.
    addrs: u32,
}

/// Resolved neighbours as the snapshot carries them.
use super::snapshot::NeighbourMap;

/// Snapshot parts kept from the previous build while their inputs are unchanged.
#[derive(Debug, Default, Clone)]
struct Cache {
    ports: Option<Arc<[PortView]>>,
    /// (adjacency version, neighbour generation, rendered list).
    adjacencies: Option<(u64, u64, Arc<[Adjacency]>)>,
    /// (neighbour generation, map).
    neighbours: Option<(u64, Arc<NeighbourMap>)>,
}

/// Construction options of [`Tables`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesOptions {
    /// Neighbour timers and limits.
    pub neighbours: NeighbourConfig,
    /// FIB tbl8 group limit: how many /24s may hold routes longer than /24.
    pub tbl8_groups: u32,
}

impl Default for TablesOptions {
    fn default() -> TablesOptions {
        TablesOptions {
            neighbours: NeighbourConfig::default(),
            tbl8_groups: Fib::DEFAULT_TBL8_GROUPS,
        }
    }
}

/// Everything an address change may touch, for rollback.
struct Saved {
    ports: Vec<Port>,
    statics: BTreeMap<Prefix, Static>,
    connected: BTreeMap<Prefix, Connected>,
    locals: BTreeMap<Ipv4Addr, u16>,
    fib: Arc<Fib>,
    adj: AdjacencyTable,
}

impl Tables {
    /// Tables for `config`, with default options.
    pub fn new(config: &ForwardingConfig) -> Result<Tables, StateError> {
        Self::with_options(config, TablesOptions::default())
    }

    /// Tables for `config`: ports, then addresses, static neighbours and routes, each
    /// checked as if added one by one. The result is at revision 1.
    pub fn with_options(
        config: &ForwardingConfig,
        options: TablesOptions,
    ) -> Result<Tables, StateError> {
        if config.ports.len() > usize::from(u16::MAX) {
            return Err(StateError::BadPort {
                index: config.ports.len(),
                reason: "too many ports".to_string(),
            });
        }
        let mut ports: Vec<Port> = Vec::with_capacity(config.ports.len());
        for (index, p) in config.ports.iter().enumerate() {
            if p.name.is_empty() {
                return Err(StateError::BadPort {
                    index,
                    reason: "name must not be empty".to_string(),
                });
            }
            if let Some(first) = ports.iter().position(|q| q.name == p.name) {
                return Err(StateError::BadPort {
                    index,
                    reason: format!("name {:?} is already used by port {first}", p.name),
                });
            }
            check_mtu(&p.name, p.mtu)?;
            if let Some(mac) = p.mac {
                check_port_mac(&p.name, mac)?;
            }
            ports.push(Port {
                name: p.name.clone(),
                mac: p.mac,
                mtu: p.mtu,
                up: p.up,
                addrs: Vec::new(),
                vrrp: false,
                vmacs: Vec::new(),
            });
        }
        let mut tables = Tables {
            ports,
            statics: BTreeMap::new(),
            connected: BTreeMap::new(),
            locals: BTreeMap::new(),
            fib: Arc::new(Fib::with_tbl8_groups(options.tbl8_groups)),
            adj: AdjacencyTable::default(),
            neigh: NeighbourTable::new(options.neighbours),
            controlplane_routes: BTreeSet::new(),
            overlay: Arc::default(),
            nat: Arc::default(),
            local_nat: Arc::default(),
            controlplane_nat: None,
            nat_conflicts: Vec::new(),
            neigh_gen: 0,
            revision: 0,
            published: 0,
            cache: Cache::default(),
        };
        for (index, p) in config.ports.iter().enumerate() {
            for &addr in &p.addresses {
                tables.add_address(index as u16, addr)?;
            }
        }
        for n in &config.neighbours {
            tables.add_neighbour(n.port, n.ip, n.mac)?;
        }
        for r in &config.routes {
            tables.add_route(r.prefix, r.target)?;
        }
        tables.neigh_gen = tables.neigh.generation();
        tables.revision = 1;
        Ok(tables)
    }

    // ----- ports -----

    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// IP MTU of port `index`.
    pub fn port_mtu(&self, index: u16) -> Option<u16> {
        self.ports.get(usize::from(index)).map(|p| p.mtu)
    }

    /// Index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Result<u16, StateError> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
            .ok_or_else(|| StateError::NoSuchPortName {
                name: name.to_string(),
            })
    }

    /// Name of port `index`.
    pub fn port_name(&self, index: u16) -> Option<&str> {
        self.ports.get(usize::from(index)).map(|p| p.name.as_str())
    }

    /// Sets the MAC of port `port` (normally the one DPDK reports at start-up).
    pub fn set_port_mac(&mut self, port: u16, mac: Mac) -> Result<u64, StateError> {
        let p = self.port(port)?;
        check_port_mac(&p.name, mac)?;
        if p.mac == Some(mac) {
            return Ok(self.revision);
        }
        self.ports[usize::from(port)].mac = Some(mac);
        Ok(self.port_changed())
    }

    /// Sets the IP MTU of port `port` (68..=9000).
    pub fn set_port_mtu(&mut self, port: u16, mtu: u16) -> Result<u64, StateError> {
        let p = self.port(port)?;
        check_mtu(&p.name, mtu)?;
        if p.mtu == mtu {
            return Ok(self.revision);
        }
        self.ports[usize::from(port)].mtu = mtu;
        Ok(self.port_changed())
    }

    /// Sets port `port` administratively up or down. Going down forgets its dynamic
    /// neighbours; routes stay (workers drop their packets as `PortDown`).
    pub fn set_port_up(&mut self, port: u16, up: bool) -> Result<u64, StateError> {
        if self.port(port)?.up == up {
            return Ok(self.revision);
        }
        self.ports[usize::from(port)].up = up;
        if !up {
            self.neigh.flush_port(port);
            self.absorb_neighbours();
        }
        Ok(self.port_changed())
    }

    /// Whether port `port` is administratively up.
    pub fn port_up(&self, port: u16) -> Option<bool> {
        self.ports.get(usize::from(port)).map(|p| p.up)
    }

    /// Port `port`'s MAC, once known.
    pub fn port_mac(&self, port: u16) -> Option<Mac> {
        self.ports.get(usize::from(port)).and_then(|p| p.mac)
    }

    /// Marks port `port` as running VRRP: its advertisements go to the control thread.
    pub fn set_port_vrrp(&mut self, port: u16, vrrp: bool) -> Result<u64, StateError> {
        if self.port(port)?.vrrp == vrrp {
            return Ok(self.revision);
        }
        self.ports[usize::from(port)].vrrp = vrrp;
        Ok(self.port_changed())
    }

    /// Sets the virtual MACs port `port` holds (VRRP masters with `use_vmac`).
    pub fn set_port_vmacs(
        &mut self,
        port: u16,
        vmacs: Vec<(Ipv4Addr, Mac)>,
    ) -> Result<u64, StateError> {
        if self.port(port)?.vmacs == vmacs {
            return Ok(self.revision);
        }
        self.ports[usize::from(port)].vmacs = vmacs;
        Ok(self.port_changed())
    }

    // ----- addresses -----

    /// Adds `addr` (e.g. 10.0.1.1/24) to `port`: a local /32 and, unless it is a /32, the
    /// connected route of its subnet. Routes whose gateway is now on a more specific
    /// connected subnet move to that subnet's port.
    pub fn add_address(&mut self, port: u16, addr: IfAddr) -> Result<u64, StateError> {
        let name = self.port(port)?.name.clone();
        addr.check().map_err(|reason| StateError::BadAddress {
            addr,
            port: name.clone(),
            reason,
        })?;
        if let Some(&other) = self.locals.get(&addr.addr) {
            return Err(StateError::AddressExists {
                addr,
                port: self.name_of(other),
            });
        }
        let subnet = addr.subnet();
        let has_subnet = addr.len < 32;
        if has_subnet {
            if let Some(c) = self.connected.get(&subnet).filter(|c| c.port != port) {
                return Err(StateError::SubnetOnOtherPort {
                    addr,
                    port: name,
                    subnet,
                    other: self.name_of(c.port),
                });
            }
        }
        let host = host_prefix(addr.addr);
        for prefix in [Some(host), has_subnet.then_some(subnet)]
            .into_iter()
            .flatten()
        {
            if let Some(s) = self.statics.get(&prefix) {
                return Err(StateError::AddressConflictsRoute {
                    addr,
                    port: name,
                    prefix,
                    route: self.describe_route(prefix, s.target),
                });
            }
        }
        if let Some((&prefix, s)) = self
            .statics
            .iter()
            .find(|(_, s)| s.target == RouteTarget::Via(addr.addr))
        {
            return Err(StateError::AddressIsGateway {
                addr,
                port: name,
                route: self.describe_route(prefix, s.target),
            });
        }
        self.transaction(|t| {
            t.install(host, AdjKey::Local)?;
            t.locals.insert(addr.addr, port);
            if has_subnet {
                match t.connected.get_mut(&subnet) {
                    Some(c) => c.addrs += 1,
                    None => {
                        t.install(subnet, AdjKey::Attached(port))?;
                        t.connected.insert(subnet, Connected { port, addrs: 1 });
                    }
                }
            }
            t.ports[usize::from(port)].addrs.push(addr);
            t.reresolve_gateways(None)
        })?;
        Ok(self.port_changed())
    }

    /// Removes `addr` from `port`, with its local /32 and (if it was the subnet's last
    /// address) its connected route. Refused while a route's gateway depends on it.
    pub fn del_address(&mut self, port: u16, addr: IfAddr) -> Result<u64, StateError> {
        let p = self.port(port)?;
        if !p.addrs.contains(&addr) {
            return Err(StateError::NoSuchAddress {
                addr,
                port: p.name.clone(),
            });
        }
        let name = p.name.clone();
        self.transaction(|t| {
            t.ports[usize::from(port)].addrs.retain(|a| *a != addr);
            t.locals.remove(&addr.addr);
            t.uninstall(host_prefix(addr.addr));
            let subnet = addr.subnet();
            if addr.len < 32 {
                if let Some(c) = t.connected.get_mut(&subnet) {
                    c.addrs -= 1;
                    if c.addrs == 0 {
                        t.connected.remove(&subnet);
                        t.uninstall(subnet);
                    }
                }
            }
            t.reresolve_gateways(Some((addr, name)))
        })?;
        Ok(self.port_changed())
    }

    // ----- routes -----

    /// Adds a static route; refused if the prefix already has one.
    pub fn add_route(&mut self, prefix: Prefix, target: RouteTarget) -> Result<u64, StateError> {
        if let Some(s) = self.statics.get(&prefix) {
            return Err(StateError::RouteExists {
                prefix,
                existing: self.describe_target(s.target),
            });
        }
        self.set_route(prefix, target)
    }

    /// Adds a static route or replaces the target of an existing one.
    pub fn replace_route(
        &mut self,
        prefix: Prefix,
        target: RouteTarget,
    ) -> Result<u64, StateError> {
        self.set_route(prefix, target)
    }

    /// Deletes the static route for `prefix`.
    pub fn del_route(&mut self, prefix: Prefix) -> Result<u64, StateError> {
        if !self.statics.contains_key(&prefix) {
            return Err(StateError::NoSuchRoute { prefix });
        }
        self.statics.remove(&prefix);
        self.controlplane_routes.remove(&prefix);
        self.uninstall(prefix);
        Ok(self.changed())
    }

    /// Marks the static route for `prefix` as the control plane's (or not): listings show
    /// it with [`RouteOrigin::ControlPlane`](super::RouteOrigin::ControlPlane). Forwarding
    /// does not change. Refused if there is no static route for `prefix`.
    pub fn set_controlplane_route(&mut self, prefix: Prefix, yes: bool) -> Result<(), StateError> {
        if !self.statics.contains_key(&prefix) {
            return Err(StateError::NoSuchRoute { prefix });
        }
        if yes {
            self.controlplane_routes.insert(prefix);
        } else {
            self.controlplane_routes.remove(&prefix);
        }
        Ok(())
    }

    /// True if the static route for `prefix` came from the control plane.
    pub fn is_controlplane_route(&self, prefix: Prefix) -> bool {
        self.controlplane_routes.contains(&prefix)
    }

    /// The target of the static route for `prefix`, if there is one.
    pub fn static_route(&self, prefix: Prefix) -> Option<RouteTarget> {
        self.statics.get(&prefix).map(|s| s.target)
    }

    /// The addresses of port `port` (none for an unknown port).
    pub fn port_addresses(&self, port: u16) -> &[IfAddr] {
        self.ports
            .get(usize::from(port))
            .map_or(&[], |p| p.addrs.as_slice())
    }

    // ----- neighbours -----

    /// Adds (or replaces) a static neighbour. The address must be on a subnet (or a
    /// directly attached route) of `port` and not ours; the MAC must be unicast.
    pub fn add_neighbour(&mut self, port: u16, ip: Ipv4Addr, mac: Mac) -> Result<u64, StateError> {
        let name = self.port(port)?.name.clone();
        let bad = |reason: String| StateError::BadNeighbour {
            ip,
            port: name.clone(),
            reason,
        };
        if !is_unicast(&mac) {
            return Err(bad(format!(
                "MAC {} is not a unicast address",
                MacDisplay(mac)
            )));
        }
        if let Some(problem) = not_unicast(ip) {
            return Err(bad(format!("{ip} is {problem}")));
        }
        if self.locals.contains_key(&ip) {
            return Err(bad(format!("{ip} is our own address")));
        }
        if !self.on_link(port, ip) {
            return Err(bad(format!("{ip} is not on any subnet of {name}")));
        }
        self.neigh.add_static(port, ip, mac);
        self.absorb_neighbours();
        Ok(self.changed())
    }

    /// Removes a static neighbour.
    pub fn del_neighbour(&mut self, port: u16, ip: Ipv4Addr) -> Result<u64, StateError> {
        let name = self.port(port)?.name.clone();
        let is_static = self
            .neigh
            .entries(Duration::ZERO)
            .any(|e| e.port == port && e.ip == ip && e.state == NeighbourState::Static);
        if !is_static {
            return Err(StateError::NoSuchNeighbour { ip, port: name });
        }
        self.neigh.remove(port, ip);
        self.absorb_neighbours();
        Ok(self.changed())
    }

    /// An ARP packet on `port` showed `ip` at `mac` (see [`NeighbourTable::learn`]).
    /// Ignored unless `ip` is a unicast address on one of the port's subnets (and not ours)
    /// and `mac` is unicast. Returns true if a resolved MAC changed.
    pub fn learn(
        &mut self,
        port: u16,
        ip: Ipv4Addr,
        mac: Mac,
        now: Duration,
        solicited: bool,
    ) -> bool {
        if !self.acceptable_neighbour(port, ip) || !is_unicast(&mac) {
            return false;
        }
        let changed = self.neigh.learn(port, ip, mac, now, solicited);
        self.sync_neighbours();
        changed
    }

    /// A worker found no MAC for `ip` on `port`: start resolving it (ignored for addresses
    /// that are not on the port's links).
    pub fn request(&mut self, port: u16, ip: Ipv4Addr, now: Duration) {
        if self.acceptable_neighbour(port, ip) {
            self.neigh.request(port, ip, now);
        }
    }

    /// Runs neighbour timers due at `now`.
    pub fn tick(&mut self, now: Duration) {
        self.neigh.tick(now);
        self.sync_neighbours();
    }

    /// When [`Tables::tick`] next has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.neigh.poll_timeout()
    }

    /// The next ARP request to send, if any.
    pub fn poll_action(&mut self) -> Option<NeighbourAction> {
        self.neigh.poll_action()
    }

    /// The source address for an ARP request for `target` on `port`: our address on the
    /// subnet containing it, else the port's first address.
    pub fn arp_source(&self, port: u16, target: Ipv4Addr) -> Option<Ipv4Addr> {
        let p = self.ports.get(usize::from(port))?;
        p.addrs
            .iter()
            .find(|a| a.subnet().contains(target))
            .or(p.addrs.first())
            .map(|a| a.addr)
    }

    // ----- snapshots -----

    /// Current revision: bumped by every change, including neighbour resolution.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// True if something changed since the last [`Tables::snapshot`].
    pub fn needs_publish(&self) -> bool {
        self.revision != self.published
    }

    /// A snapshot of the current state, sharing every unchanged part with the previous one.
    pub fn snapshot(&mut self) -> Arc<Snapshot> {
        let ports = match &self.cache.ports {
            Some(p) => Arc::clone(p),
            None => {
                let p: Arc<[PortView]> = self.ports.iter().map(port_view).collect();
                self.cache.ports = Some(Arc::clone(&p));
                p
            }
        };
        let (adj_version, gen) = (self.adj.version(), self.neigh.generation());
        let adjacencies = match &self.cache.adjacencies {
            Some((v, g, a)) if *v == adj_version && *g == gen => Arc::clone(a),
            _ => {
                let a = self.adj.render(&self.neigh);
                self.cache.adjacencies = Some((adj_version, gen, Arc::clone(&a)));
                a
            }
        };
        let neighbours = match &self.cache.neighbours {
            Some((g, n)) if *g == gen => Arc::clone(n),
            _ => {
                let n: NeighbourMap = self
                    .neigh
                    .resolved()
                    .map(|(port, ip, mac)| ((port, u32::from(ip)), mac))
                    .collect();
                let n = Arc::new(n);
                self.cache.neighbours = Some((gen, Arc::clone(&n)));
                n
            }
        };
        self.published = self.revision;
        Arc::new(Snapshot {
            revision: self.revision,
            ports,
            fib: Arc::clone(&self.fib),
            adjacencies,
            neighbours,
            overlay: Arc::clone(&self.overlay),
            nat: Arc::clone(&self.nat),
        })
    }

    /// Replaces host.toml's NAT configuration (a new revision).
    pub fn set_nat(&mut self, nat: Arc<crate::nat::NatConfig>) -> u64 {
        self.local_nat = nat;
        self.merge_nat();
        self.revision += 1;
        self.revision
    }

    /// The control plane's NAT objects the merge with host.toml's left out, one line each.
    pub fn nat_conflicts(&self) -> Vec<String> {
        self.nat_conflicts.iter().map(ToString::to_string).collect()
    }

    /// host.toml's NAT configuration.
    pub fn local_nat(&self) -> &crate::nat::NatConfig {
        &self.local_nat
    }

    /// Sets the control plane's NAT rules and floating IPs (`None`: this host is in no
    /// gateway group); they are used beside host.toml's, on its outside port. A new
    /// revision only if they changed.
    pub fn set_controlplane_nat(&mut self, nat: Option<&crate::nat::NatConfig>) {
        if self.controlplane_nat.as_ref() == nat {
            return;
        }
        self.controlplane_nat = nat.cloned();
        self.merge_nat();
        self.revision += 1;
    }

    fn merge_nat(&mut self) {
        self.nat = match &self.controlplane_nat {
            Some(cp) => {
                let (nat, conflicts) = self.local_nat.merged(cp);
                // Each standing conflict is logged once, when it appears.
                for c in conflicts.iter().filter(|c| !self.nat_conflicts.contains(c)) {
                    tracing::error!(conflict = %c, "NAT configuration conflict");
                }
                self.nat_conflicts = conflicts;
                Arc::new(nat)
            }
            None => {
                self.nat_conflicts.clear();
                self.local_nat.clone()
            }
        };
    }

    /// Replaces the overlay (a new revision).
    pub fn set_overlay(&mut self, overlay: Arc<crate::overlay::Overlay>) -> u64 {
        self.overlay = overlay;
        self.revision += 1;
        self.revision
    }

    /// The current overlay.
    pub fn overlay(&self) -> &Arc<crate::overlay::Overlay> {
        &self.overlay
    }

    /// The configuration the tables currently implement (what a reload would reproduce).
    pub fn config(&self) -> ForwardingConfig {
        ForwardingConfig {
            ports: self
                .ports
                .iter()
                .map(|p| PortConfig {
                    name: p.name.clone(),
                    mac: p.mac,
                    mtu: p.mtu,
                    up: p.up,
                    addresses: p.addrs.clone(),
                })
                .collect(),
            routes: self
                .statics
                .iter()
                .map(|(&prefix, s)| RouteConfig {
                    prefix,
                    target: s.target,
                })
                .collect(),
            neighbours: self
                .neigh
                .entries(Duration::ZERO)
                .filter(|e| e.state == NeighbourState::Static)
                .filter_map(|e| {
                    Some(StaticNeighbour {
                        port: e.port,
                        ip: e.ip,
                        mac: e.mac?,
                    })
                })
                .collect(),
        }
    }

    /// The FIB (next hops index the adjacency list).
    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &NeighbourTable {
        &self.neigh
    }

    /// Number of distinct adjacencies (next hops) in use.
    pub fn adjacency_count(&self) -> usize {
        self.adj.in_use()
    }

    // ----- internals -----

    fn port(&self, index: u16) -> Result<&Port, StateError> {
        self.ports
            .get(usize::from(index))
            .ok_or(StateError::NoSuchPort {
                index,
                count: self.ports.len(),
            })
    }

    pub(super) fn name_of(&self, index: u16) -> String {
        self.port_name(index)
            .map_or_else(|| format!("port {index}"), str::to_string)
    }

    /// "via 10.0.1.2", "dev eth0", "blackhole" or "unreachable".
    pub(super) fn describe_target(&self, target: RouteTarget) -> String {
        match target {
            RouteTarget::Via(gw) => format!("via {gw}"),
            RouteTarget::Port(p) => format!("dev {}", self.name_of(p)),
            RouteTarget::Blackhole => "blackhole".to_string(),
            RouteTarget::Unreachable => "unreachable".to_string(),
        }
    }

    fn describe_route(&self, prefix: Prefix, target: RouteTarget) -> String {
        format!("{prefix} {}", self.describe_target(target))
    }

    /// The port (and subnet) of the most specific connected subnet containing `ip`.
    fn gateway_port(&self, ip: Ipv4Addr) -> Option<(u16, Prefix)> {
        (0..=32u8).rev().find_map(|len| {
            let subnet = Prefix::truncate(ip, len).ok()?;
            self.connected.get(&subnet).map(|c| (c.port, subnet))
        })
    }

    /// True if `ip` is reachable without a gateway on `port`: on one of its subnets, or
    /// covered by a directly attached route to it.
    fn on_link(&self, port: u16, ip: Ipv4Addr) -> bool {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return false;
        };
        p.addrs.iter().any(|a| a.subnet().contains(ip))
            || self.fib.lookup(u32::from(ip)).and_then(|i| self.adj.key(i))
                == Some(AdjKey::Attached(port))
    }

    fn acceptable_neighbour(&self, port: u16, ip: Ipv4Addr) -> bool {
        not_unicast(ip).is_none() && !self.locals.contains_key(&ip) && self.on_link(port, ip)
    }

    /// The adjacency a static route's target needs, after checking the target.
    fn target_key(&self, prefix: Prefix, target: RouteTarget) -> Result<AdjKey, StateError> {
        Ok(match target {
            RouteTarget::Via(gw) => {
                if let Some(&port) = self.locals.get(&gw) {
                    return Err(StateError::GatewayIsLocal {
                        prefix,
                        gw,
                        port: self.name_of(port),
                    });
                }
                let (port, subnet) = self
                    .gateway_port(gw)
                    .ok_or(StateError::GatewayUnreachable { prefix, gw })?;
                if let Some(which) = reserved_in_subnet(gw, &subnet) {
                    return Err(StateError::GatewayNotHost {
                        prefix,
                        gw,
                        which,
                        subnet,
                    });
                }
                AdjKey::Gateway(port, gw)
            }
            RouteTarget::Port(port) => {
                self.port(port)?;
                AdjKey::Attached(port)
            }
            RouteTarget::Blackhole => AdjKey::Blackhole,
            RouteTarget::Unreachable => AdjKey::Unreachable,
        })
    }

    fn set_route(&mut self, prefix: Prefix, target: RouteTarget) -> Result<u64, StateError> {
        if let Some(c) = self.connected.get(&prefix) {
            return Err(StateError::RouteIsConnected {
                prefix,
                port: self.name_of(c.port),
            });
        }
        if prefix.length() == 32 {
            if let Some(&port) = self.locals.get(&prefix.addr()) {
                return Err(StateError::RouteIsLocal {
                    prefix,
                    port: self.name_of(port),
                });
            }
        }
        let key = self.target_key(prefix, target)?;
        let adj = self.install(prefix, key)?;
        self.statics.insert(prefix, Static { target, adj });
        Ok(self.changed())
    }

    /// Points `prefix` at the adjacency for `key`, releasing the one it pointed at before.
    /// Fails (changing nothing) only when the FIB is out of tbl8 groups.
    fn install(&mut self, prefix: Prefix, key: AdjKey) -> Result<u32, StateError> {
        if !self.fib.has_room_for(&prefix) {
            return Err(StateError::Fib(FibError::Tbl8Exhausted {
                prefix,
                limit: self.fib.tbl8_limit(),
            }));
        }
        let old = self.fib.get(&prefix);
        let adj = self.adj.acquire(key)?;
        if let Err(e) = Arc::make_mut(&mut self.fib).insert_prefix(prefix, adj) {
            self.adj.release(adj);
            return Err(e.into());
        }
        if let Some(old) = old {
            self.adj.release(old);
        }
        Ok(adj)
    }

    /// Removes `prefix` from the FIB and releases its adjacency.
    fn uninstall(&mut self, prefix: Prefix) {
        if let Ok(adj) = Arc::make_mut(&mut self.fib).remove_prefix(prefix) {
            self.adj.release(adj);
        }
    }

    /// Moves gateway routes to the port of the most specific connected subnet holding their
    /// gateway. `removing` names the address being deleted, for the error when a gateway is
    /// left on no connected subnet.
    fn reresolve_gateways(&mut self, removing: Option<(IfAddr, String)>) -> Result<(), StateError> {
        let mut moves = Vec::new();
        for (&prefix, s) in &self.statics {
            let RouteTarget::Via(gw) = s.target else {
                continue;
            };
            let Some((port, _)) = self.gateway_port(gw) else {
                return Err(match removing {
                    Some((addr, port)) => StateError::AddressInUse {
                        addr,
                        port,
                        route: self.describe_route(prefix, s.target),
                    },
                    None => StateError::GatewayUnreachable { prefix, gw },
                });
            };
            let key = AdjKey::Gateway(port, gw);
            if self.adj.key(s.adj) != Some(key) {
                moves.push((prefix, key));
            }
        }
        for (prefix, key) in moves {
            let adj = self.install(prefix, key)?;
            if let Some(s) = self.statics.get_mut(&prefix) {
                s.adj = adj;
            }
        }
        Ok(())
    }

    /// Runs `change`; if it fails, restores everything it may have touched.
    fn transaction(
        &mut self,
        change: impl FnOnce(&mut Tables) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let saved = Saved {
            ports: self.ports.clone(),
            statics: self.statics.clone(),
            connected: self.connected.clone(),
            locals: self.locals.clone(),
            fib: Arc::clone(&self.fib),
            adj: self.adj.clone(),
        };
        let result = change(self);
        if result.is_err() {
            self.ports = saved.ports;
            self.statics = saved.statics;
            self.connected = saved.connected;
            self.locals = saved.locals;
            self.fib = saved.fib;
            self.adj = saved.adj;
        }
        result
    }

    /// Folds neighbour-table changes into the revision.
    fn sync_neighbours(&mut self) {
        let gen = self.neigh.generation();
        if gen != self.neigh_gen {
            self.neigh_gen = gen;
            self.revision += 1;
        }
    }

    /// Takes neighbour-table changes made as part of a change that bumps the revision anyway.
    fn absorb_neighbours(&mut self) {
        self.neigh_gen = self.neigh.generation();
    }

    /// Records a successful change: re-pins gateways if they changed, bumps the revision.
    fn changed(&mut self) -> u64 {
        if self.adj.take_gateways_changed() {
            self.neigh.set_pinned(self.adj.gateways());
        }
        self.revision += 1;
        self.revision
    }

    fn port_changed(&mut self) -> u64 {
        self.cache.ports = None;
        self.changed()
    }
}

fn host_prefix(ip: Ipv4Addr) -> Prefix {
    Prefix::truncate(ip, 32).expect("32 is a valid length")
}

fn check_mtu(port: &str, mtu: u16) -> Result<(), StateError> {
    if MTU_RANGE.contains(&mtu) {
        Ok(())
    } else {
        Err(StateError::BadMtu {
            port: port.to_string(),
            mtu,
        })
    }
}

fn check_port_mac(port: &str, mac: Mac) -> Result<(), StateError> {
    if is_unicast(&mac) {
        Ok(())
    } else {
        Err(StateError::BadPortMac {
            port: port.to_string(),
            mac: MacDisplay(mac).to_string(),
        })
    }
}

fn port_view(p: &Port) -> PortView {
    PortView {
        name: p.name.clone(),
        mac: p.mac.unwrap_or([0; 6]),
        mtu: p.mtu,
        up: p.up,
        addrs: p.addrs.iter().map(|a| (a.addr, a.len)).collect(),
        vrrp: p.vrrp,
        vmacs: p.vmacs.clone(),
    }
}

#[cfg(test)]
mod tests;
