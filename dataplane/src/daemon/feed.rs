//! The control-plane feed (`aegis-dataplane --controlplane ADDR --host NAME`): the dataplane
//! follows its host's slice of the desired state and turns it into tables.
//!
//! - The slice: the `Host` object named NAME gives interface addresses (`port` = a port name
//!   of host.toml, `address` = CIDR); the `Route` objects with `host == NAME` give static
//!   routes (via a next hop, blackhole or unreachable). [`Slice::from_objects`] derives it.
//! - Each new revision's slice replaces the previous one as a whole: the difference to what
//!   the control plane installed last ([`FeedState::owned`]) is applied to a copy of the
//!   tables, which becomes current and is published once — or, if any part is refused,
//!   nothing changes and the error is reported (`apply_error`); the next revision is tried
//!   afresh. Local configuration (host.toml, the journal, `aegisctl dp` changes) stays and
//!   wins: an entry the control plane wants that is already configured identically is left
//!   to the local configuration, a conflicting one is an apply error.
//! - The applied revision goes into `show status`, the metrics and the heartbeats.
//! - While the control plane is away nothing changes: the workers forward with the last
//!   tables, and the follower resumes from the applied revision when it is back.
//! - The last applied slice is cached in a JSON file ([`Cache`]), so a dataplane restarted
//!   while the control plane is away comes back with the last known tables.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aegis_agent::follow::{Follower, LinkInfo, Synced};
use aegis_agent::heartbeat::{AppliedState, Heartbeat, PortLink};
use aegis_agent::{ConnectConfig, Connector};
use aegis_api::controlplane::v1::{object::Spec, Kind, Object, RouteAction};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::backend::DaemonBackend;
use super::persist::Change;
use crate::ctl::{ControlPlaneStatus, Ipv4Cidr, RouteTarget};
use crate::fib::Prefix;
use crate::overlay::build::{build as build_overlay, PortLookup};
use crate::overlay::secgroup::CounterSlots;
use crate::state::forwarding::IfAddr;
use crate::state::Tables;

/// The agent name the dataplane reports in heartbeats.
pub const AGENT: &str = "dataplane";

/// How the dataplane reaches the control plane and which host it is.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Addresses, TLS and token.
    pub connect: ConnectConfig,
    /// The host whose slice to follow.
    pub host: String,
    /// Where the last applied slice is cached (`None`: not cached).
    pub cache: Option<PathBuf>,
    /// Time between heartbeats.
    pub heartbeat: Duration,
    /// The diagnostics address sent in heartbeats (host.toml `diag_listen`; `None`: none).
    pub diag_address: Option<std::net::SocketAddr>,
}

/// What the control plane wants on this dataplane, as of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    /// The control-plane revision.
    pub revision: u64,
    /// Interface addresses: (port name, address with prefix length).
    pub addresses: BTreeSet<(String, Ipv4Cidr)>,
    /// Static routes.
    pub routes: BTreeMap<Ipv4Cidr, RouteTarget>,
}

impl Slice {
    /// The slice of `host` in the follower's objects. A value that does not parse makes the
    /// whole revision unusable (the error names the object). No `Host` object (not created
    /// yet, or deleted) is an empty slice.
    pub fn from_objects(host: &str, synced: &Synced) -> Result<Slice, String> {
        let mut slice = Slice {
            revision: synced.revision,
            ..Slice::default()
        };
        for ((kind, name), object) in synced.objects.iter() {
            match &object.spec {
                Some(Spec::Host(h)) if *kind == Kind::Host as i32 && name == host => {
                    for a in &h.addresses {
                        let cidr: Ipv4Cidr = a.address.parse().map_err(|e| {
                            format!("host {name}: address {:?} on {}: {e}", a.address, a.port)
                        })?;
                        slice.addresses.insert((a.port.clone(), cidr));
                    }
                }
                Some(Spec::Route(r)) if r.host == host && r.vpc.is_empty() => {
                    let prefix: Ipv4Cidr = r
                        .prefix
                        .parse()
                        .map_err(|e| format!("route {name}: prefix {:?}: {e}", r.prefix))?;
                    let target = match RouteAction::try_from(r.action) {
                        Ok(RouteAction::Unspecified | RouteAction::Forward) => {
                            let via: Ipv4Addr = r.next_hop.parse().map_err(|_| {
                                format!(
                                    "route {name}: next hop {:?} is not an IPv4 address",
                                    r.next_hop
                                )
                            })?;
                            RouteTarget::Via(via)
                        }
                        Ok(RouteAction::Blackhole) => RouteTarget::Blackhole,
                        Ok(RouteAction::Unreachable) => RouteTarget::Unreachable,
                        Err(_) => return Err(format!("route {name}: unknown action {}", r.action)),
                    };
                    if slice.routes.insert(prefix, target).is_some() {
                        return Err(format!("route {name}: a second route for {prefix}"));
                    }
                }
                _ => {}
            }
        }
        Ok(slice)
    }
}

/// The objects the overlay is built from: every Host, Vpc, Subnet, Port and
/// SecurityGroup, the routes of VPCs, and the north-south objects (ExternalNetwork,
/// GatewayGroup, SnatRule, FloatingIp).
pub fn overlay_objects(synced: &Synced) -> Vec<Object> {
    synced
        .objects
        .values()
        .filter(|o| match &o.spec {
            Some(Spec::Host(_) | Spec::Vpc(_) | Spec::Subnet(_) | Spec::Port(_)) => true,
            Some(Spec::SecurityGroup(_)) => true,
            Some(
                Spec::ExternalNetwork(_)
                | Spec::GatewayGroup(_)
                | Spec::SnatRule(_)
                | Spec::FloatingIp(_),
            ) => true,
            Some(Spec::Route(r)) => !r.vpc.is_empty(),
            _ => false,
        })
        .cloned()
        .collect()
}

/// This dataplane's ports as the overlay builder sees them.
struct TablePorts<'a>(&'a Tables);

impl PortLookup for TablePorts<'_> {
    fn port(&self, name: &str) -> Option<(u16, u16)> {
        let i = self.0.port_index(name).ok()?;
        Some((i, self.0.port_mtu(i)?))
    }

    fn count(&self) -> usize {
        self.0.port_count()
    }

    fn port_with_address(&self, ip: Ipv4Addr) -> Option<(u16, u16)> {
        (0..self.0.port_count() as u16)
            .find(|&i| self.0.port_addresses(i).iter().any(|a| a.addr == ip))
            .and_then(|i| Some((i, self.0.port_mtu(i)?)))
    }

    fn nat_outside_port(&self) -> Option<u16> {
        self.0.local_nat().outside_port
    }
}

/// Builds the overlay of `host` from `objects` on top of `tables` (whose addresses hold the
/// underlay address) and installs it in `tables` if it differs from the current one.
fn apply_overlay(
    tables: &mut Tables,
    host: &str,
    revision: u64,
    objects: &[Object],
    slots: &mut CounterSlots,
) -> Result<(), String> {
    let overlay = build_overlay(host, revision, objects, &TablePorts(tables), slots)?;
    tables.set_controlplane_nat(overlay.gateway.as_ref().map(|g| &g.nat));
    tables.set_overlay(Arc::new(overlay));
    Ok(())
}

/// The feed's state, kept by the backend (`show status`, metrics, heartbeats).
#[derive(Debug, Default)]
pub struct FeedState {
    /// The control-plane addresses, as given.
    pub servers: String,
    /// The host followed.
    pub host: String,
    /// What the control plane installed (entries already configured locally are not in
    /// it: they belong to the local configuration). Its revision is the applied revision.
    pub owned: Slice,
    /// Why the latest revision could not be applied ("" = it was).
    pub apply_error: String,
    /// The latest revision received.
    pub received_revision: u64,
    /// The watch stream is open.
    pub connected: bool,
    /// The tables come from the cache: nothing received since the start.
    pub from_cache: bool,
    /// The control plane's NAT objects the applied tables left out (clashes with
    /// host.toml's `[nat]`), as `show status` prints them.
    pub nat_conflicts: Vec<String>,
    /// The objects the applied overlay was built from (cached with the slice).
    pub overlay_objects: Vec<Object>,
    /// Names of the security-group denial counters, stable across revisions.
    pub counter_slots: CounterSlots,
}

impl FeedState {
    /// For `show status`.
    pub fn status(&self) -> ControlPlaneStatus {
        ControlPlaneStatus {
            servers: self.servers.clone(),
            host: self.host.clone(),
            connected: self.connected,
            applied_revision: self.owned.revision,
            apply_error: self.apply_error.clone(),
            received_revision: self.received_revision,
            from_cache: self.from_cache,
            nat_conflicts: self.nat_conflicts.clone(),
        }
    }

    /// For the heartbeat: the applied revision, the apply error, and the NAT conflicts as
    /// warnings (so `aegisctl host list` shows them too).
    pub fn applied(&self) -> AppliedState {
        AppliedState {
            revision: self.owned.revision,
            error: self.apply_error.clone(),
            warnings: self
                .nat_conflicts
                .iter()
                .map(|c| format!("NAT conflict {c}"))
                .collect(),
        }
    }
}

/// Applies `desired` to a copy of `tables`, given what the control plane installed before
/// (`owned`). Returns the new tables and what the control plane owns in them; on error,
/// `tables` is untouched and the message says which entry was refused and why.
pub fn apply_slice(
    tables: &Tables,
    owned: &Slice,
    desired: &Slice,
) -> Result<(Tables, Slice), String> {
    let mut next = tables.clone();
    let mut now = Slice {
        revision: desired.revision,
        ..Slice::default()
    };
    // 1. Routes that go away or change (re-added below with the new target).
    for (prefix, target) in &owned.routes {
        if desired.routes.get(prefix) == Some(target) {
            now.routes.insert(*prefix, target.clone());
            continue;
        }
        // Gone already (an operator's `dp route del`): nothing to do.
        if cp_prefix(*prefix).is_some_and(|p| next.is_controlplane_route(p)) {
            Change::DeleteRoute { prefix: *prefix }
                .apply(&mut next)
                .map_err(|e| format!("route {prefix}: cannot remove: {e}"))?;
        }
    }
    // 2. Addresses that go away.
    for (port, address) in &owned.addresses {
        if desired.addresses.contains(&(port.clone(), *address)) {
            now.addresses.insert((port.clone(), *address));
            continue;
        }
        if has_address(&next, port, *address) {
            Change::DeleteAddress {
                port: port.clone(),
                address: *address,
            }
            .apply(&mut next)
            .map_err(|e| format!("address {address} on {port}: cannot remove: {e}"))?;
        }
    }
    // 3. New addresses; one configured locally already is the local configuration's.
    for (port, address) in &desired.addresses {
        if now.addresses.contains(&(port.clone(), *address)) {
            continue;
        }
        next.port_index(port)
            .map_err(|e| format!("address {address} on {port}: {e}"))?;
        if has_address(&next, port, *address) {
            continue;
        }
        Change::AddAddress {
            port: port.clone(),
            address: *address,
        }
        .apply(&mut next)
        .map_err(|e| format!("address {address} on {port}: {e}"))?;
        now.addresses.insert((port.clone(), *address));
    }
    // 4. New and changed routes; an identical local route is the local configuration's, a
    //    different one is a conflict.
    for (prefix, target) in &desired.routes {
        if now.routes.contains_key(prefix) {
            continue;
        }
        let p = cp_prefix(*prefix).ok_or_else(|| format!("route {prefix}: host bits set"))?;
        let change = Change::AddRoute {
            prefix: *prefix,
            target: target.clone(),
        };
        if let Some(local) = next.static_route(p) {
            let mut probe = next.clone();
            let same = probe.del_route(p).is_ok()
                && change.apply(&mut probe).is_ok()
                && probe.static_route(p) == Some(local);
            if same {
                continue;
            }
            return Err(format!(
                "route {}: conflicts with the local route for {prefix} (host.toml or aegisctl dp); \
                 remove one of them",
                change.to_line().trim_start_matches("route add ")
            ));
        }
        change
            .apply(&mut next)
            .map_err(|e| format!("{}: {e}", change.to_line().trim_start_matches("route add ")))
            .map(|_| ())?;
        next.set_controlplane_route(p, true)
            .map_err(|e| format!("route {prefix}: {e}"))?;
        now.routes.insert(*prefix, target.clone());
    }
    Ok((next, now))
}

fn cp_prefix(c: Ipv4Cidr) -> Option<Prefix> {
    Prefix::new(c.addr(), c.prefix_len()).ok()
}

fn has_address(t: &Tables, port: &str, address: Ipv4Cidr) -> bool {
    let want = IfAddr {
        addr: address.addr(),
        len: address.prefix_len(),
    };
    t.port_index(port)
        .map(|i| t.port_addresses(i).contains(&want))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// The cache file

/// The cached slice (JSON): the last applied slice of one host.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// Format version (1).
    version: u32,
    host: String,
    revision: u64,
    addresses: Vec<CachedAddress>,
    routes: Vec<CachedRoute>,
    /// The overlay's objects (VPCs, subnets, ports, security groups, hosts), as the API
    /// prints them; absent in files written before the overlay existed.
    #[serde(default)]
    objects: Vec<Object>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedAddress {
    port: String,
    address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedRoute {
    prefix: String,
    /// "via A.B.C.D", "dev PORT", "blackhole" or "unreachable".
    target: String,
}

/// The file holding the last applied slice.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
}

impl Cache {
    /// The cache at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Cache {
        Cache { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached slice of `host` and the overlay's objects; `Ok(None)` when there is no
    /// file or it is another host's.
    pub fn load(&self, host: &str) -> Result<Option<(Slice, Vec<Object>)>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let file: CacheFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if file.version != 1 {
            return Err(format!(
                "{}: unknown format version {}",
                self.path.display(),
                file.version
            ));
        }
        if file.host != host {
            return Ok(None);
        }
        let bad = |what: String| format!("{}: {what}", self.path.display());
        let mut slice = Slice {
            revision: file.revision,
            ..Slice::default()
        };
        for a in file.addresses {
            let cidr = a
                .address
                .parse()
                .map_err(|e| bad(format!("address {:?}: {e}", a.address)))?;
            slice.addresses.insert((a.port, cidr));
        }
        for r in file.routes {
            let line = format!("route add {} {}", r.prefix, r.target);
            match Change::parse(&line).map_err(bad)? {
                Change::AddRoute { prefix, target } => {
                    slice.routes.insert(prefix, target);
                }
                _ => return Err(bad(format!("bad route {line:?}"))),
            }
        }
        Ok(Some((slice, file.objects)))
    }

    /// Saves `slice` of `host` and the overlay's `objects` (temporary file, fsync, rename).
    pub fn save(&self, host: &str, slice: &Slice, objects: &[Object]) -> std::io::Result<()> {
        let file = CacheFile {
            version: 1,
            host: host.to_owned(),
            revision: slice.revision,
            addresses: slice
                .addresses
                .iter()
                .map(|(port, a)| CachedAddress {
                    port: port.clone(),
                    address: a.to_string(),
                })
                .collect(),
            routes: slice
                .routes
                .iter()
                .map(|(prefix, target)| CachedRoute {
                    prefix: prefix.to_string(),
                    target: Change::AddRoute {
                        prefix: *prefix,
                        target: target.clone(),
                    }
                    .to_line()
                    .trim_start_matches(&format!("route add {prefix} "))
                    .to_owned(),
                })
                .collect(),
            objects: objects.to_vec(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

// ---------------------------------------------------------------------------------------------
// Driving it

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The feed as the backend holds it: its state and its cache.
#[derive(Debug)]
pub struct Feed {
    /// Status and what the control plane owns.
    pub state: Mutex<FeedState>,
    /// The cache file, if any.
    pub cache: Option<Cache>,
}

impl Feed {
    /// A feed for `options`, nothing applied yet.
    pub fn new(options: &FeedOptions) -> Feed {
        Feed {
            state: Mutex::new(FeedState {
                servers: options.connect.addresses.join(","),
                host: options.host.clone(),
                ..FeedState::default()
            }),
            cache: options.cache.clone().map(Cache::new),
        }
    }

    /// True when the control plane's configuration is current: a revision received on the
    /// open watch stream is applied (not one restored from the cache, nor while the
    /// stream is down: either may be older than what the control plane has).
    pub fn current(&self) -> bool {
        let st = lock(&self.state);
        st.connected && !st.from_cache && st.owned.revision > 0 && st.apply_error.is_empty()
    }

    /// At start, before the workers run: applies the cached slice (if any) to `tables`. A
    /// cache that cannot be read or applied is logged and reported as the apply error.
    pub fn restore(&self, tables: &mut Tables) {
        let Some(cache) = &self.cache else {
            return;
        };
        let mut st = lock(&self.state);
        let host = st.host.clone();
        let (slice, objects) = match cache.load(&host) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "control-plane cache not used");
                st.apply_error = format!("cached slice not used: {e}");
                return;
            }
        };
        let mut slots = st.counter_slots.clone();
        let result =
            apply_slice(tables, &Slice::default(), &slice).and_then(|(mut next, owned)| {
                apply_overlay(&mut next, &host, slice.revision, &objects, &mut slots)?;
                Ok((next, owned))
            });
        match result {
            Ok((next, owned)) => {
                *tables = next;
                st.nat_conflicts = tables.nat_conflicts();
                st.counter_slots = slots;
                st.overlay_objects = objects;
                tracing::info!(cache = %cache.path().display(), revision = owned.revision,
                    addresses = owned.addresses.len(), routes = owned.routes.len(),
                    "control-plane tables restored from the cache");
                st.owned = owned;
                st.from_cache = true;
            }
            Err(e) => {
                tracing::warn!(cache = %cache.path().display(), error = %e,
                    "cached control-plane slice does not apply");
                st.apply_error = format!("cached slice (revision {}): {e}", slice.revision);
            }
        }
    }
}

impl DaemonBackend {
    /// Applies the control plane's slice at `synced`: all of it, published at once, or
    /// nothing (the error is kept as the apply error). Returns what was applied.
    pub fn apply_controlplane(&self, synced: &Synced) -> AppliedState {
        let Some(feed) = &self.feed else {
            return AppliedState::default();
        };
        let (result, host) = {
            let mut t = lock(&self.tables);
            let mut st = lock(&feed.state);
            st.received_revision = synced.revision;
            st.from_cache = false;
            let host = st.host.clone();
            let objects = overlay_objects(synced);
            let mut slots = st.counter_slots.clone();
            let result = Slice::from_objects(&host, synced)
                .and_then(|desired| apply_slice(&t, &st.owned, &desired))
                .and_then(|(mut next, owned)| {
                    apply_overlay(&mut next, &host, synced.revision, &objects, &mut slots)?;
                    Ok((next, owned))
                });
            match result {
                Ok((next, owned)) => {
                    st.counter_slots = slots;
                    st.overlay_objects = objects;
                    let changed = owned != st.owned || t.revision() != next.revision();
                    *t = next;
                    st.nat_conflicts = t.nat_conflicts();
                    if t.needs_publish() {
                        self.cell.publish(t.snapshot());
                    }
                    if changed {
                        tracing::info!(
                            revision = owned.revision,
                            addresses = owned.addresses.len(),
                            routes = owned.routes.len(),
                            "control-plane revision applied"
                        );
                    }
                    st.owned = owned;
                    st.apply_error.clear();
                    (Ok(st.owned.clone()), host)
                }
                Err(e) => {
                    if st.apply_error != e {
                        tracing::warn!(revision = synced.revision, error = %e,
                            "control-plane revision not applied; keeping the previous tables");
                    }
                    st.apply_error.clone_from(&e);
                    (Err(e), host)
                }
            }
        };
        if let (Ok(owned), Some(cache)) = (&result, &feed.cache) {
            let objects = lock(&feed.state).overlay_objects.clone();
            if let Err(e) = cache.save(&host, owned, &objects) {
                tracing::warn!(cache = %cache.path().display(), error = %e,
                    "cannot cache the control-plane slice");
            }
        }
        let applied = lock(&feed.state).applied();
        applied
    }

    /// True if the static route for `prefix` was installed by the control plane.
    pub fn controlplane_owns_route(&self, prefix: Ipv4Cidr) -> bool {
        self.feed
            .as_ref()
            .is_some_and(|f| lock(&f.state).owned.routes.contains_key(&prefix))
    }

    /// True if `address` on `port` was installed by the control plane.
    pub fn controlplane_owns_address(&self, port: &str, address: Ipv4Cidr) -> bool {
        self.feed.as_ref().is_some_and(|f| {
            lock(&f.state)
                .owned
                .addresses
                .contains(&(port.to_owned(), address))
        })
    }

    /// Link state of the dataplane port named `name`, if there is one.
    fn port_link_up(&self, name: &str) -> Option<bool> {
        let index = lock(&self.tables).port_index(name).ok()?;
        let (port, _) = self.ports.get(usize::from(index))?;
        Some(port.link().map(|l| l.up).unwrap_or(false))
    }
}

/// Runs the feed until `shutdown` turns true: the follower, the heartbeats, and the loop
/// that applies every new revision.
pub async fn run(
    backend: Arc<DaemonBackend>,
    options: FeedOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(feed) = &backend.feed else {
        return;
    };
    let initial = lock(&feed.state).applied();
    let (slice_tx, mut slice_rx) = watch::channel::<Option<Synced>>(None);
    let (link_tx, mut link_rx) = watch::channel(LinkInfo::default());
    let (applied_tx, applied_rx) = watch::channel(initial);

    let follower = Follower::new(
        Connector::new(options.connect.clone()),
        options.host.clone(),
        vec![
            Kind::Host,
            Kind::Route,
            Kind::Vpc,
            Kind::Subnet,
            Kind::Port,
            Kind::SecurityGroup,
            Kind::ExternalNetwork,
            Kind::GatewayGroup,
            Kind::SnatRule,
            Kind::FloatingIp,
        ],
    );
    let follow_task = tokio::spawn(follower.run(slice_tx, link_tx));
    let port_backend = backend.clone();
    let port_link: PortLink = Arc::new(move |name: &str| port_backend.port_link_up(name));
    let heartbeat = Heartbeat {
        host: options.host.clone(),
        agent: AGENT.to_owned(),
        interval: options.heartbeat,
        slice: slice_rx.clone(),
        applied: applied_rx,
        port_link,
        diag_address: options
            .diag_address
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let heartbeat_task = tokio::spawn(heartbeat.run(Connector::new(options.connect.clone())));

    loop {
        tokio::select! {
            changed = slice_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let synced = slice_rx.borrow_and_update().clone();
                if let Some(synced) = synced {
                    let applied = backend.apply_controlplane(&synced);
                    applied_tx.send_replace(applied);
                }
            }
            changed = link_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let connected = link_rx.borrow_and_update().connected;
                lock(&feed.state).connected = connected;
            }
            _ = shutdown.wait_for(|v| *v) => break,
        }
    }
    follow_task.abort();
    heartbeat_task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::forwarding::{ForwardingConfig, PortConfig};
    use crate::state::RouteOrigin;
    use aegis_api::controlplane::v1::{Host, HostAddress, Object, Route};

    fn tables() -> Tables {
        let port = |name: &str, addr: &str| PortConfig {
            name: name.into(),
            mac: None,
            mtu: 1500,
            up: true,
            addresses: vec![{
                let c: Ipv4Cidr = addr.parse().unwrap();
                IfAddr {
                    addr: c.addr(),
                    len: c.prefix_len(),
                }
            }],
        };
        let config = ForwardingConfig {
            ports: vec![port("p0", "10.0.1.1/24"), port("p1", "10.0.2.1/24")],
            ..ForwardingConfig::default()
        };
        Tables::new(&config).unwrap()
    }

    fn host(addresses: &[(&str, &str)]) -> Object {
        Object {
            name: "r1".into(),
            spec: Some(Spec::Host(Host {
                addresses: addresses
                    .iter()
                    .map(|(p, a)| HostAddress {
                        port: (*p).into(),
                        address: (*a).into(),
                    })
                    .collect(),
                ..Host::default()
            })),
            ..Object::default()
        }
    }

    fn route(name: &str, host: &str, prefix: &str, via: &str, action: RouteAction) -> Object {
        Object {
            name: name.into(),
            spec: Some(Spec::Route(Route {
                host: host.into(),
                prefix: prefix.into(),
                next_hop: via.into(),
                action: action as i32,
                ..Route::default()
            })),
            ..Object::default()
        }
    }

    fn synced(revision: u64, objects: Vec<Object>) -> Synced {
        Synced {
            revision,
            objects: Arc::new(
                objects
                    .into_iter()
                    .map(|o| ((aegis_agent::follow::kind_of(&o) as i32, o.name.clone()), o))
                    .collect(),
            ),
        }
    }

    fn slice(revision: u64, objects: Vec<Object>) -> Slice {
        Slice::from_objects("r1", &synced(revision, objects)).unwrap()
    }

    fn origin_of(t: &Tables, prefix: &str) -> Option<RouteOrigin> {
        let c: Ipv4Cidr = prefix.parse().unwrap();
        t.route_entries()
            .into_iter()
            .find(|e| e.prefix.addr() == c.addr() && e.prefix.length() == c.prefix_len())
            .map(|e| e.origin)
    }

    #[test]
    fn derives_the_hosts_addresses_and_routes_only() {
        let s = slice(
            7,
            vec![
                host(&[("p0", "10.0.1.1/24"), ("p1", "10.0.9.1/24")]),
                route("a", "r1", "10.9.0.0/16", "10.0.2.2", RouteAction::Forward),
                route("b", "r1", "10.8.0.0/16", "", RouteAction::Blackhole),
                route("c", "r2", "10.7.0.0/16", "10.0.2.2", RouteAction::Forward),
            ],
        );
        assert_eq!(s.revision, 7);
        assert_eq!(s.addresses.len(), 2);
        assert_eq!(s.routes.len(), 2);
        assert_eq!(
            s.routes.get(&"10.9.0.0/16".parse().unwrap()),
            Some(&RouteTarget::Via(Ipv4Addr::new(10, 0, 2, 2)))
        );
        assert_eq!(
            s.routes.get(&"10.8.0.0/16".parse().unwrap()),
            Some(&RouteTarget::Blackhole)
        );
        let bad = Slice::from_objects(
            "r1",
            &synced(
                1,
                vec![route(
                    "x",
                    "r1",
                    "10.9.0.0/16",
                    "nope",
                    RouteAction::Forward,
                )],
            ),
        )
        .unwrap_err();
        assert!(bad.contains("route x") && bad.contains("nope"), "{bad}");
        // No host object: nothing wanted.
        assert_eq!(
            slice(3, vec![]),
            Slice {
                revision: 3,
                ..Slice::default()
            }
        );
    }

    #[test]
    fn a_new_slice_replaces_the_previous_one_and_local_entries_stay() {
        let t = tables();
        let s1 = slice(
            2,
            vec![
                // p0's address is in host.toml already: it stays the local configuration's.
                host(&[("p0", "10.0.1.1/24"), ("p1", "10.0.3.1/24")]),
                route("a", "r1", "10.9.0.0/16", "10.0.2.2", RouteAction::Forward),
            ],
        );
        let (t, owned) = apply_slice(&t, &Slice::default(), &s1).unwrap();
        assert_eq!(owned.revision, 2);
        assert_eq!(owned.addresses.len(), 1, "{owned:?}");
        assert_eq!(
            origin_of(&t, "10.9.0.0/16"),
            Some(RouteOrigin::ControlPlane)
        );
        assert!(has_address(&t, "p1", "10.0.3.1/24".parse().unwrap()));

        // Revision 5: the route moves to a new next hop, another is added, the address goes.
        let s2 = slice(
            5,
            vec![
                host(&[("p0", "10.0.1.1/24")]),
                route("a", "r1", "10.9.0.0/16", "10.0.1.2", RouteAction::Forward),
                route("b", "r1", "10.8.0.0/16", "", RouteAction::Unreachable),
            ],
        );
        let (t, owned) = apply_slice(&t, &owned, &s2).unwrap();
        assert_eq!(owned.revision, 5);
        assert!(owned.addresses.is_empty());
        assert!(!has_address(&t, "p1", "10.0.3.1/24".parse().unwrap()));
        // host.toml's address is still there.
        assert!(has_address(&t, "p0", "10.0.1.1/24".parse().unwrap()));
        let p = cp_prefix("10.9.0.0/16".parse().unwrap()).unwrap();
        assert_eq!(
            t.static_route(p),
            Some(crate::state::forwarding::RouteTarget::Via(Ipv4Addr::new(
                10, 0, 1, 2
            )))
        );
        assert_eq!(
            origin_of(&t, "10.8.0.0/16"),
            Some(RouteOrigin::ControlPlane)
        );

        // Revision 6: nothing wanted any more.
        let (t, owned) = apply_slice(&t, &owned, &slice(6, vec![])).unwrap();
        assert!(owned.routes.is_empty());
        assert_eq!(origin_of(&t, "10.9.0.0/16"), None);
        assert_eq!(origin_of(&t, "10.8.0.0/16"), None);
        assert!(has_address(&t, "p0", "10.0.1.1/24".parse().unwrap()));
    }

    #[test]
    fn conflicts_with_local_entries_fail_the_whole_revision() {
        let mut t = tables();
        Change::AddRoute {
            prefix: "10.9.0.0/16".parse().unwrap(),
            target: RouteTarget::Via(Ipv4Addr::new(10, 0, 1, 2)),
        }
        .apply(&mut t)
        .unwrap();
        let before = t.route_entries();
        let s = slice(
            4,
            vec![
                host(&[("p1", "10.0.3.1/24")]),
                route("a", "r1", "10.9.0.0/16", "10.0.2.2", RouteAction::Forward),
            ],
        );
        let e = apply_slice(&t, &Slice::default(), &s).unwrap_err();
        assert!(e.contains("10.9.0.0/16") && e.contains("local"), "{e}");
        // The caller keeps `t`: nothing changed.
        assert_eq!(t.route_entries(), before);
        // The same route as the local one is no conflict; it stays local.
        let same = slice(
            5,
            vec![route(
                "a",
                "r1",
                "10.9.0.0/16",
                "10.0.1.2",
                RouteAction::Forward,
            )],
        );
        let (t2, owned) = apply_slice(&t, &Slice::default(), &same).unwrap();
        assert!(owned.routes.is_empty());
        assert_eq!(origin_of(&t2, "10.9.0.0/16"), Some(RouteOrigin::Static));
        // An unknown port is an error too.
        let e = apply_slice(
            &t,
            &Slice::default(),
            &slice(6, vec![host(&[("p9", "10.0.4.1/24")])]),
        )
        .unwrap_err();
        assert!(e.contains("p9"), "{e}");
        // A next hop on no connected subnet.
        let e = apply_slice(
            &t,
            &Slice::default(),
            &slice(
                7,
                vec![route(
                    "z",
                    "r1",
                    "10.6.0.0/16",
                    "192.0.2.1",
                    RouteAction::Forward,
                )],
            ),
        )
        .unwrap_err();
        assert!(e.contains("10.6.0.0/16"), "{e}");
    }

    #[test]
    fn the_cache_round_trips_and_ignores_other_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("sub/controlplane-slice.json"));
        assert_eq!(cache.load("r1").unwrap(), None);
        let s = slice(
            9,
            vec![
                host(&[("p1", "10.0.3.1/24")]),
                route("a", "r1", "10.9.0.0/16", "10.0.2.2", RouteAction::Forward),
                route("b", "r1", "10.8.0.0/16", "", RouteAction::Blackhole),
                route("c", "r1", "10.7.0.0/16", "", RouteAction::Unreachable),
            ],
        );
        let objects = vec![host(&[("p1", "10.0.3.1/24")])];
        cache.save("r1", &s, &objects).unwrap();
        assert_eq!(cache.load("r1").unwrap(), Some((s, objects)));
        assert_eq!(cache.load("r2").unwrap(), None);
        std::fs::write(cache.path(), "{ not json").unwrap();
        let e = cache.load("r1").unwrap_err();
        assert!(e.contains("controlplane-slice.json"), "{e}");
    }

    /// A feed's configuration is current only once a revision received on the open stream
    /// is applied: not one restored from the cache, nor while the stream is down (a
    /// gateway claiming puts off its check of the synced sessions until then).
    #[test]
    fn a_feed_is_current_only_with_a_live_applied_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controlplane-slice.json");
        let options = FeedOptions {
            connect: ConnectConfig::new("127.0.0.1:9", None, None).unwrap(),
            host: "r1".into(),
            cache: Some(path.clone()),
            heartbeat: Duration::from_secs(1),
            diag_address: None,
        };
        let s = slice(4, vec![host(&[("p1", "10.0.3.1/24")])]);
        Cache::new(&path)
            .save("r1", &s, &[host(&[("p1", "10.0.3.1/24")])])
            .unwrap();
        let feed = Feed::new(&options);
        assert!(!feed.current(), "nothing applied");
        let mut t = tables();
        feed.restore(&mut t);
        {
            let st = lock(&feed.state);
            assert_eq!(
                (st.owned.revision, st.from_cache),
                (4, true),
                "{}",
                st.apply_error
            );
        }
        lock(&feed.state).connected = true;
        assert!(
            !feed.current(),
            "the cache may be older than the control plane"
        );
        lock(&feed.state).from_cache = false;
        assert!(feed.current(), "a revision received live");
        lock(&feed.state).connected = false;
        assert!(!feed.current(), "the stream is down");
        let mut st = lock(&feed.state);
        st.connected = true;
        st.apply_error = "revision 5 refused".into();
        drop(st);
        assert!(!feed.current(), "the latest revision did not apply");
    }
}

#[cfg(test)]
mod overlay_tests {
    use super::*;
    use crate::state::forwarding::{ForwardingConfig, PortConfig};
    use crate::testkit::overlay::objects;

    /// Host a's ports: ul0 with its underlay address, vm1 and vm2.
    fn tables() -> Tables {
        let mut ul0 = PortConfig::new("ul0");
        ul0.addresses = vec![IfAddr::new("10.88.0.11".parse().unwrap(), 24)];
        let config = ForwardingConfig {
            ports: vec![ul0, PortConfig::new("vm1"), PortConfig::new("vm2")],
            ..ForwardingConfig::default()
        };
        Tables::new(&config).unwrap()
    }

    fn port_device(objects: &mut [Object], port: &str, device: &str) {
        for o in objects.iter_mut().filter(|o| o.name == port) {
            if let Some(Spec::Port(p)) = &mut o.spec {
                p.device = device.into();
            }
        }
    }

    #[test]
    fn the_overlay_is_built_from_the_objects_and_binds_local_ports() {
        let mut t = tables();
        let mut slots = CounterSlots::default();
        let before = t.revision();
        apply_overlay(&mut t, "a", 9, &objects(), &mut slots).unwrap();
        assert!(t.revision() > before, "a new revision to publish");
        let ov = t.overlay();
        assert_eq!(ov.revision, 9);
        assert_eq!(ov.mtu, 1450);
        let name = |port: u16| {
            ov.local_endpoint(port)
                .map(|e| ov.endpoints[e as usize].name.clone())
        };
        assert_eq!(name(0), None, "ul0 is no VM port");
        assert_eq!(name(1).as_deref(), Some("b1"));
        assert_eq!(name(2).as_deref(), Some("b3"));
        assert_eq!(ov.by_vni.len(), 2);
    }

    #[test]
    fn a_port_on_a_missing_device_refuses_the_revision_and_keeps_the_overlay() {
        let mut t = tables();
        let mut slots = CounterSlots::default();
        apply_overlay(&mut t, "a", 9, &objects(), &mut slots).unwrap();
        let revision = t.revision();
        let mut objs = objects();
        port_device(&mut objs, "b1", "vm9");
        let e = apply_overlay(&mut t, "a", 10, &objs, &mut slots).unwrap_err();
        assert!(e.contains("port b1") && e.contains("vm9"), "{e}");
        // Two ports on one device.
        let mut objs = objects();
        port_device(&mut objs, "b3", "vm1");
        let e = apply_overlay(&mut t, "a", 11, &objs, &mut slots).unwrap_err();
        assert!(e.contains("already bound"), "{e}");
        assert_eq!(t.revision(), revision);
        assert_eq!(t.overlay().revision, 9);
    }

    #[test]
    fn an_underlay_address_on_no_port_is_an_apply_error() {
        let config = ForwardingConfig {
            ports: vec![
                PortConfig::new("ul0"),
                PortConfig::new("vm1"),
                PortConfig::new("vm2"),
            ],
            ..ForwardingConfig::default()
        };
        let mut t = Tables::new(&config).unwrap();
        let e =
            apply_overlay(&mut t, "a", 3, &objects(), &mut CounterSlots::default()).unwrap_err();
        assert!(
            e.contains("10.88.0.11") && e.contains("no dataplane port"),
            "{e}"
        );
    }

    /// A control-plane floating IP on an address host.toml's `[nat]` already uses is left
    /// out of the tables and shown in the feed's status (`show status`, the
    /// `aegis_controlplane_nat_conflicts` gauge, the heartbeat's warnings), also when the
    /// slice comes from the cache.
    #[test]
    fn control_plane_nat_objects_clashing_with_host_toml_are_in_the_status() {
        use crate::nat::{FloatingIp, NatConfig, ROUTED_VPC};
        use crate::testkit::overlay::{gateway_objects, TUNNEL};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controlplane-slice.json");
        let mut ul0 = PortConfig::new("ul0");
        ul0.addresses = vec![
            IfAddr::new("10.88.0.13".parse().unwrap(), 24),
            IfAddr::new(TUNNEL.parse().unwrap(), 32),
        ];
        let mut ext0 = PortConfig::new("ext0");
        ext0.addresses = vec![IfAddr::new("203.0.113.2".parse().unwrap(), 24)];
        let config = ForwardingConfig {
            ports: vec![ul0, ext0],
            ..ForwardingConfig::default()
        };
        let mut t = Tables::new(&config).unwrap();
        // host.toml: 203.0.113.20 is the floating IP of a routed host; the control plane
        // gives the same address to b1.
        let local = FloatingIp {
            vpc: ROUTED_VPC,
            inside: "192.168.7.5".parse().unwrap(),
            outside: "203.0.113.20".parse().unwrap(),
        };
        t.set_nat(Arc::new(NatConfig::new(Some(1), Vec::new(), vec![local])));
        let slice = Slice {
            revision: 7,
            ..Slice::default()
        };
        Cache::new(&path)
            .save("g", &slice, &gateway_objects())
            .unwrap();
        let feed = Feed::new(&FeedOptions {
            connect: ConnectConfig::new("127.0.0.1:9", None, None).unwrap(),
            host: "g".into(),
            cache: Some(path),
            heartbeat: Duration::from_secs(1),
            diag_address: None,
        });
        feed.restore(&mut t);
        let status = lock(&feed.state).status();
        assert_eq!(status.apply_error, "", "the revision itself applies");
        assert_eq!(status.applied_revision, 7);
        assert_eq!(status.nat_conflicts.len(), 1, "{:?}", status.nat_conflicts);
        assert!(
            status.nat_conflicts[0].contains("203.0.113.20"),
            "{:?}",
            status.nat_conflicts
        );
        // The heartbeat carries it as a warning, beside the applied revision.
        let applied = lock(&feed.state).applied();
        assert_eq!((applied.revision, applied.error.as_str()), (7, ""));
        assert_eq!(
            applied.warnings,
            [format!("NAT conflict {}", status.nat_conflicts[0])]
        );
        // host.toml's floating IP is the one in the tables.
        assert_eq!(t.snapshot().nat.floating_ips(), &[local][..]);
    }
}
