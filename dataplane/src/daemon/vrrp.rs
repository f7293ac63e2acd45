//! The daemon's VRRP speaker: runs the `aegis-vrrp` instances imported from host.toml's
//! keepalived.conf, and those of this host's gateway group (built from the control plane's
//! GatewayGroup: an instance on the underlay port holding the tunnel address and one on the
//! external port holding the external addresses, in one sync group), on the control thread.
//! A change of the group applies in place: an instance whose parameters changed keeps its
//! state (a priority change announced at once), one whose VRID or port changed is replaced,
//! an unchanged one is left alone. A keepalived.conf instance with the group's VRID wins:
//! the group's instances are not built, and `problems` says so. Workers hand it the advertisements of VRRP ports
//! ([`ControlEvent::Vrrp`](crate::graph::ControlEvent)); it sends adverts and gratuitous ARP
//! through worker 0's injection queue, so VRRP lives in the dataplane and a fault of the
//! host kernel's networking cannot cut it.
//!
//! On becoming MASTER the virtual addresses are installed on the port (ARP answered, ICMP
//! echo served) and the snapshot is published *before* the advertisement and gratuitous ARP
//! go out (commit before claim); leaving MASTER removes them. Tracked ports (admin down or
//! link down) lower the priority by their weight, or force FAULT. Notify scripts run with
//! keepalived's arguments and are never waited for. With `use_vmac` the master also takes
//! the virtual MAC 00-00-5E-00-01-VRID: adverts and gratuitous ARP come from it, the port
//! accepts frames to it and answers ARP for the virtual addresses with it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aegis_vrrp::envelope::{self, FrameError};
use aegis_vrrp::group::Router;
use aegis_vrrp::instance::{Action, Cause, Config, Discard, Initial, State};
use aegis_vrrp::keepalived::Notify;
use aegis_vrrp::wire::Version;

use crate::ctl::{Ipv4Cidr, VrrpInfo, VrrpInstanceInfo};
use crate::graph::PuntedFrame;
use crate::overlay::gateway::{GatewayRole, EXTERNAL_INSTANCE, TUNNEL_INSTANCE};
use crate::state::{IfAddr, SnapshotCell, Tables};
use crate::worker::Injection;

use super::DaemonError;
pub use crate::config::VrrpSetup;

/// How often tracked ports' link state is read.
const TRACK_PERIOD: Duration = Duration::from_millis(100);

/// Per-instance facts the state machine does not keep.
#[derive(Debug)]
struct Binding {
    port: u16,
    prefixes: Vec<IfAddr>,
    /// Addresses the control plane adds to the instance (a gateway group's external
    /// addresses and floating IPs, its tunnel address): owned like `prefixes`.
    extra: Vec<IfAddr>,
    track: Vec<(u16, Option<i32>)>,
    notify: Notify,
    installed: bool,
    /// Built from the control plane's gateway group (not from keepalived.conf).
    generated: bool,
}

/// The speaker.
pub struct VrrpSpeaker {
    router: Router,
    bindings: Vec<Binding>,
    group_notify: BTreeMap<String, Notify>,
    rx_errors: BTreeMap<&'static str, u64>,
    ident: u16,
    next_track: Duration,
    children: Vec<Child>,
    now: Duration,
    /// Overlay revision whose gateway addresses were placed last.
    gateway_seen: Option<u64>,
    /// The gateway group whose instances run here (built from the control plane), if any.
    generated_group: Option<String>,
    /// Why the gateway group does not run as declared here, in words.
    problems: Vec<String>,
}

impl std::fmt::Debug for VrrpSpeaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrrpSpeaker")
            .field("instances", &self.bindings.len())
            .finish()
    }
}

/// Where the speaker sends frames and reads link state.
pub trait VrrpIo {
    /// Queues a frame for transmission on `port`; false if the queue was full.
    fn send(&self, port: u16, frame: Vec<u8>) -> bool;
    /// Whether `port`'s link is up (admin state is read from the tables).
    fn link_up(&self, port: u16) -> bool;
    /// Called when instance `instance` is about to become MASTER, before its addresses
    /// are installed and announced: session sync commits its sessions here.
    fn before_claim(&self, _instance: &str) {}
}

fn setup_error(setup: &VrrpSetup, line: usize, message: String) -> DaemonError {
    DaemonError::Setup(format!(
        "{}: line {line}: {message}",
        setup.source.display()
    ))
}

/// The instance a gateway group asks for: its configuration and port.
#[derive(Debug, Clone)]
struct Wanted {
    config: Config,
    port: u16,
}

/// The name of the sync group of a gateway group's instances.
fn sync_group_name(group: &str) -> String {
    format!("gateway-group:{group}")
}

impl VrrpSpeaker {
    /// The daemon's speaker: host.toml's `[vrrp]` instances, if any; a dataplane fed by the
    /// control plane (`fed`) gets one even without `[vrrp]`, for the instances of the
    /// gateway group it may become a member of. `None`: neither.
    pub fn for_host(
        setup: Option<&VrrpSetup>,
        fed: bool,
        tables: &mut Tables,
    ) -> Result<Option<VrrpSpeaker>, DaemonError> {
        match setup {
            Some(setup) => {
                let v = VrrpSpeaker::new(setup, tables)?;
                tracing::info!(file = %setup.source.display(),
                    instances = setup.imported.instances.len(), "VRRP configured");
                Ok(Some(v))
            }
            None if fed => Ok(Some(VrrpSpeaker::without_file())),
            None => Ok(None),
        }
    }

    /// A speaker with no keepalived.conf: it runs only what a gateway group asks for.
    pub fn without_file() -> VrrpSpeaker {
        VrrpSpeaker {
            router: Router::default(),
            bindings: Vec::new(),
            group_notify: BTreeMap::new(),
            rx_errors: BTreeMap::new(),
            ident: 0,
            next_track: Duration::ZERO,
            children: Vec::new(),
            now: Duration::ZERO,
            gateway_seen: None,
            generated_group: None,
            problems: Vec::new(),
        }
    }

    /// Binds every instance to its port (`interface` is a dataplane port name), takes the
    /// port's first address as the instance's own when the file names none, and marks the
    /// ports so workers hand their advertisements over.
    pub fn new(setup: &VrrpSetup, tables: &mut Tables) -> Result<VrrpSpeaker, DaemonError> {
        let mut configs = Vec::new();
        let mut bindings = Vec::new();
        for inst in &setup.imported.instances {
            let name = &inst.config.name;
            let port = tables.port_index(&inst.interface).map_err(|_| {
                setup_error(
                    setup,
                    inst.line,
                    format!(
                        "vrrp_instance {name}: interface {} is not a dataplane port",
                        inst.interface
                    ),
                )
            })?;
            let mut config = inst.config.clone();
            if config.primary.is_unspecified() {
                config.primary = tables
                    .port_addresses(port)
                    .first()
                    .map(|a| a.addr)
                    .ok_or_else(|| {
                        setup_error(
                            setup,
                            inst.line,
                            format!(
                                "vrrp_instance {name}: port {} has no address to send from \
                                 (give it one, or set unicast_src_ip)",
                                inst.interface
                            ),
                        )
                    })?;
            }
            let mut track = Vec::new();
            for t in &inst.track {
                let p = tables.port_index(&t.interface).map_err(|_| {
                    setup_error(
                        setup,
                        inst.line,
                        format!(
                            "vrrp_instance {name}: track_interface {} is not a dataplane port",
                            t.interface
                        ),
                    )
                })?;
                track.push((p, t.weight));
            }
            let prefixes = inst
                .prefixes
                .iter()
                .map(|&(addr, len)| IfAddr { addr, len })
                .collect();
            configs.push(config);
            bindings.push(Binding {
                port,
                prefixes,
                extra: Vec::new(),
                track,
                notify: inst.notify.clone(),
                installed: false,
                generated: false,
            });
        }
        let groups = setup
            .imported
            .groups
            .iter()
            .map(|g| g.group.clone())
            .collect();
        let router = Router::new(configs, groups)
            .map_err(|e| DaemonError::Setup(format!("{}: {e}", setup.source.display())))?;
        for b in &bindings {
            tables.set_port_vrrp(b.port, true)?;
        }
        Ok(VrrpSpeaker {
            router,
            bindings,
            group_notify: setup
                .imported
                .groups
                .iter()
                .map(|g| (g.group.name.clone(), g.notify.clone()))
                .collect(),
            rx_errors: BTreeMap::new(),
            ident: 0,
            next_track: Duration::ZERO,
            children: Vec::new(),
            now: Duration::ZERO,
            gateway_seen: None,
            generated_group: None,
            problems: Vec::new(),
        })
    }

    /// Starts every instance.
    pub fn start(&mut self, now: Duration, t: &mut Tables, cell: &SnapshotCell, io: &dyn VrrpIo) {
        self.now = now;
        self.track(now, t, io);
        self.router.start(now);
        self.carry_out(t, cell, io);
    }

    /// Handles one advertisement a worker handed over.
    pub fn receive(&mut self, now: Duration, frame: &PuntedFrame) {
        self.now = now;
        let rx = match envelope::parse_frame(frame.data()) {
            Ok(rx) => rx,
            Err(e) => {
                *self.rx_errors.entry(frame_error_name(&e)).or_default() += 1;
                tracing::debug!(port = frame.port, error = %e, "VRRP frame refused");
                return;
            }
        };
        let found = self.bindings.iter().enumerate().position(|(i, b)| {
            b.port == frame.port && self.router.instances()[i].config().vrid == rx.repr.vrid
        });
        let Some(i) = found else {
            *self.rx_errors.entry("no_instance").or_default() += 1;
            return;
        };
        if let Err(d) = self.router.receive(now, i, rx.src, &rx.repr) {
            if d != Discard::Lower {
                tracing::debug!(instance = %self.router.instances()[i].config().name,
                    from = %rx.src, reason = d.name(), "VRRP advertisement discarded");
            }
        }
    }

    /// Runs the timers and tracking, and carries out what the instances asked for.
    pub fn step(&mut self, now: Duration, t: &mut Tables, cell: &SnapshotCell, io: &dyn VrrpIo) {
        self.now = now;
        if now >= self.next_track {
            self.next_track = now + TRACK_PERIOD;
            self.track(now, t, io);
        }
        self.follow_gateway(t, cell, io);
        self.router.poll(now);
        self.carry_out(t, cell, io);
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    /// Stops every instance: masters send priority 0 and give the addresses up.
    pub fn shutdown(
        &mut self,
        now: Duration,
        t: &mut Tables,
        cell: &SnapshotCell,
        io: &dyn VrrpIo,
    ) {
        self.now = now;
        self.router.shutdown(now);
        self.carry_out(t, cell, io);
    }

    /// True if the instance called `name` is MASTER.
    pub fn is_master(&self, name: &str) -> bool {
        self.router
            .instances()
            .iter()
            .any(|i| i.config().name == name && i.state() == State::Master)
    }

    /// Holds or releases preemption on every instance (a gateway not yet resynced must
    /// not take over from a live master).
    pub fn set_preempt_hold(&mut self, hold: bool) {
        self.router.set_preempt_hold(hold);
    }

    /// The next time [`VrrpSpeaker::step`] has a timer to run.
    pub fn poll_at(&self) -> Option<Duration> {
        self.router.poll_at()
    }

    fn track(&mut self, now: Duration, t: &mut Tables, io: &dyn VrrpIo) {
        let snap_up = |p: u16| t.port_up(p).unwrap_or(false) && io.link_up(p);
        let wanted: Vec<(i32, bool)> = self
            .bindings
            .iter()
            .map(|b| {
                let mut adjust = 0;
                let mut fault = false;
                for &(p, weight) in &b.track {
                    if !snap_up(p) {
                        match weight {
                            Some(w) => adjust += w,
                            None => fault = true,
                        }
                    }
                }
                (adjust, fault)
            })
            .collect();
        for (i, (adjust, fault)) in wanted.into_iter().enumerate() {
            let inst = &self.router.instances()[i];
            if inst.faulted() != fault || inst.priority_adjust() != adjust {
                self.router.set_tracking(now, i, adjust, fault);
            }
        }
    }

    fn carry_out(&mut self, t: &mut Tables, cell: &SnapshotCell, io: &dyn VrrpIo) {
        while let Some((i, action)) = self.router.pop_action() {
            match action {
                Action::Transition { from, to, cause } => {
                    let name = self.router.instances()[i].config().name.clone();
                    tracing::info!(instance = %name, %from, %to, %cause, "VRRP transition");
                    if to == State::Master && !self.bindings[i].installed {
                        io.before_claim(&name);
                    }
                    self.set_installed(i, to == State::Master, t);
                    // Commit before claim: the workers get the addresses before anyone
                    // hears that we own them.
                    if t.needs_publish() {
                        cell.publish(t.snapshot());
                    }
                    self.notify(i, to, cause != Cause::SyncGroup);
                }
                Action::Advertise { priority } => self.advertise(i, priority, t, io),
                Action::GratuitousArp { count } => {
                    let b = &self.bindings[i];
                    let Some(mac) = self.source_mac(i, t) else {
                        continue;
                    };
                    for _ in 0..count {
                        for p in b.prefixes.iter().chain(&b.extra) {
                            if !io.send(b.port, envelope::gratuitous_arp(mac, p.addr)) {
                                *self.rx_errors.entry("tx_queue_full").or_default() += 1;
                            }
                        }
                    }
                }
            }
        }
    }

    fn source_mac(&self, i: usize, t: &Tables) -> Option<[u8; 6]> {
        let inst = &self.router.instances()[i];
        if inst.config().use_vmac {
            return Some(envelope::virtual_mac(inst.config().vrid));
        }
        t.port_mac(self.bindings[i].port)
    }

    fn advertise(&mut self, i: usize, priority: u8, t: &mut Tables, io: &dyn VrrpIo) {
        let port = self.bindings[i].port;
        let Some(mac) = self.source_mac(i, t) else {
            return;
        };
        let inst = &self.router.instances()[i];
        let repr = inst.advertisement(priority);
        let src = inst.config().primary;
        let peers = inst.config().unicast_peers.clone();
        let mut targets: Vec<(Ipv4Addr, Option<[u8; 6]>)> = Vec::new();
        if peers.is_empty() {
            targets.push((envelope::GROUP, None));
        }
        for peer in peers {
            match t.neighbours().lookup(port, peer) {
                Some(m) => targets.push((peer, Some(m))),
                None => {
                    // Resolve it for the next advertisement.
                    t.request(port, peer, self.now);
                    *self.rx_errors.entry("peer_unresolved").or_default() += 1;
                }
            }
        }
        for (dst, dst_mac) in targets {
            self.ident = self.ident.wrapping_add(1);
            match envelope::emit_frame(&repr, mac, dst_mac, src, dst, self.ident) {
                Ok(frame) => {
                    if !io.send(port, frame) {
                        *self.rx_errors.entry("tx_queue_full").or_default() += 1;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a VRRP advertisement"),
            }
        }
    }

    /// Follows this host's gateway role (control plane) when its revision changes: builds,
    /// changes or removes the group's instances ([`VrrpSpeaker::reconcile`]), then places
    /// the group's addresses: the external addresses and floating IPs on the group's
    /// external instance, the tunnel address on its underlay instance — or, when
    /// keepalived.conf serves the group, on the file's first instance of each port. A
    /// MASTER installs a change at once and announces new addresses with gratuitous ARP.
    fn follow_gateway(&mut self, t: &mut Tables, cell: &SnapshotCell, io: &dyn VrrpIo) {
        let ov = std::sync::Arc::clone(t.overlay());
        if self.gateway_seen == Some(ov.revision) {
            return;
        }
        self.gateway_seen = Some(ov.revision);
        let mut problems = Vec::new();
        let wanted = match &ov.gateway {
            Some(role) => self.wanted(role, t, &mut problems),
            None => Vec::new(),
        };
        let group = ov.gateway.as_ref().map(|r| r.group.clone());
        self.reconcile(wanted, group.as_deref(), t, cell, io);
        for p in problems.iter().filter(|p| !self.problems.contains(p)) {
            tracing::warn!(problem = %p, "gateway group VRRP");
        }
        self.problems = problems;
        let mut wanted: Vec<Vec<IfAddr>> = vec![Vec::new(); self.bindings.len()];
        if let Some(role) = &ov.gateway {
            let external = role
                .external_addresses
                .iter()
                .map(|&(addr, len)| IfAddr { addr, len });
            let tunnel = role.tunnel.map(|addr| IfAddr { addr, len: 32 });
            for (port, name, addrs) in [
                (
                    role.external_port,
                    EXTERNAL_INSTANCE,
                    external.collect::<Vec<_>>(),
                ),
                (
                    role.underlay_port,
                    TUNNEL_INSTANCE,
                    tunnel.into_iter().collect(),
                ),
            ] {
                let generated = self.bindings.iter().enumerate().position(|(i, b)| {
                    b.generated && self.router.instances()[i].config().name == name
                });
                let target =
                    generated.or_else(|| self.bindings.iter().position(|b| b.port == port));
                match target {
                    // An address keepalived.conf already lists stays the file's.
                    Some(i) => {
                        wanted[i].extend(addrs.into_iter().filter(|a| {
                            !self.bindings[i].prefixes.iter().any(|p| p.addr == a.addr)
                        }))
                    }
                    None if !addrs.is_empty() => {
                        *self.rx_errors.entry("gateway_port_unbound").or_default() += 1;
                        tracing::warn!(group = %role.group, port,
                            "no VRRP instance runs on this port: the gateway group's addresses \
                             on it are not served (see show vrrp's problems)");
                    }
                    None => {}
                }
            }
        }
        let mut changed = false;
        for (i, want) in wanted.into_iter().enumerate() {
            if self.bindings[i].extra == want {
                continue;
            }
            changed = true;
            let old = std::mem::replace(&mut self.bindings[i].extra, want);
            let b = &self.bindings[i];
            if !b.installed {
                continue;
            }
            let port = b.port;
            for a in old.iter().filter(|a| !b.extra.contains(a)) {
                if let Err(e) = t.del_address(port, *a) {
                    tracing::error!(addr = %a.addr, error = %e, "cannot remove a gateway address");
                }
            }
            let added: Vec<IfAddr> = b
                .extra
                .iter()
                .filter(|a| !old.contains(a))
                .copied()
                .collect();
            for a in &added {
                if let Err(e) = t.add_address(port, *a) {
                    tracing::error!(addr = %a.addr, error = %e, "cannot add a gateway address");
                }
            }
            self.refresh_vmacs(port, t);
            if t.needs_publish() {
                cell.publish(t.snapshot());
            }
            if let Some(mac) = self.source_mac(i, t) {
                for a in &added {
                    if !io.send(port, envelope::gratuitous_arp(mac, a.addr)) {
                        *self.rx_errors.entry("tx_queue_full").or_default() += 1;
                    }
                }
            }
        }
        if changed {
            tracing::info!(
                revision = ov.revision,
                "gateway addresses placed on the VRRP instances"
            );
        }
    }

    /// The instances `role`'s group asks this host for: on the underlay port (if the group
    /// has a tunnel address) and on the external port, in that order — none when
    /// keepalived.conf runs an instance with the group's VRID or one of their names (the
    /// file wins), or when they cannot be built (`problems` says why).
    fn wanted(&self, role: &GatewayRole, t: &Tables, problems: &mut Vec<String>) -> Vec<Wanted> {
        let v = &role.vrrp;
        let group = &role.group;
        let file = self
            .bindings
            .iter()
            .zip(self.router.instances())
            .filter(|(b, _)| !b.generated)
            .map(|(_, i)| i.config());
        for c in file {
            if u32::from(c.vrid) == v.vrid
                || c.name == EXTERNAL_INSTANCE
                || c.name == TUNNEL_INSTANCE
            {
                problems.push(format!(
                    "keepalived.conf's vrrp_instance {} (VRID {}) serves gateway group {group} \
                     (VRID {}): the group's VRRP settings (priority, interval, preempt, peers) \
                     do not apply on this host; remove it from keepalived.conf to let the \
                     control plane run the group",
                    c.name, c.vrid, v.vrid
                ));
                return Vec::new();
            }
        }
        problems.extend(
            v.problems
                .iter()
                .map(|p| format!("gateway group {group}: {p}")),
        );
        let mut fail = |what: String| {
            problems.push(format!(
                "gateway group {group}: VRRP not started on this host: {what}"
            ));
            Vec::new()
        };
        let Ok(vrid) = u8::try_from(v.vrid) else {
            return fail(format!("vrid {} is outside 1..255", v.vrid));
        };
        let Ok(priority) = u8::try_from(v.priority) else {
            return fail(format!("priority {} is outside 1..254", v.priority));
        };
        if priority == 0 || priority == 255 {
            return fail(format!("priority {priority} is outside 1..254"));
        }
        if !v.interval_ms.is_multiple_of(10) {
            return fail(format!(
                "advert interval {} ms is not a multiple of 10 ms",
                v.interval_ms
            ));
        }
        let Ok(interval_cs) = u16::try_from(v.interval_ms / 10) else {
            return fail(format!("advert interval {} ms is too long", v.interval_ms));
        };
        let base = |name: &str, primary: Ipv4Addr, addresses: Vec<Ipv4Addr>| {
            let mut c = Config::new(name, vrid, primary, addresses);
            c.version = if v.version == 2 {
                Version::V2
            } else {
                Version::V3
            };
            c.priority = priority;
            c.interval_cs = interval_cs;
            c.preempt = v.preempt;
            c.preempt_delay = Duration::from_millis(u64::from(v.preempt_delay_ms));
            c.initial = Initial::Backup;
            c
        };
        // A port's own addresses: not the virtual ones a master holds.
        let own = |port: u16| -> Vec<Ipv4Addr> {
            t.port_addresses(port)
                .iter()
                .map(|a| a.addr)
                .filter(|a| {
                    Some(*a) != role.tunnel && !role.external_addresses.iter().any(|x| x.0 == *a)
                })
                .collect()
        };
        let mut out = Vec::new();
        if let Some(tunnel) = role.tunnel {
            let own = own(role.underlay_port);
            let primary = v
                .underlay_address
                .filter(|u| own.contains(u))
                .or_else(|| own.first().copied());
            let Some(primary) = primary else {
                return fail("the underlay port has no address to send from".into());
            };
            let mut c = base(TUNNEL_INSTANCE, primary, vec![tunnel]);
            c.unicast_peers = v.underlay_peers.clone();
            out.push(Wanted {
                config: c,
                port: role.underlay_port,
            });
        }
        let own = own(role.external_port);
        let primary = own
            .iter()
            .find(|a| v.external_network.is_some_and(|n| n.contains(**a)))
            .or_else(|| own.first())
            .copied();
        let Some(primary) = primary else {
            return fail(format!(
                "the external port {} has no address to send from (give it one in host.toml or \
                 the Host object)",
                t.port_name(role.external_port).unwrap_or("?")
            ));
        };
        let addresses: Vec<Ipv4Addr> = role
            .external_addresses
            .iter()
            .map(|a| a.0)
            .take(aegis_vrrp::wire::MAX_ADDRESSES)
            .collect();
        if addresses.is_empty() {
            return fail("the group has no external address".into());
        }
        let mut c = base(EXTERNAL_INSTANCE, primary, addresses);
        c.unicast_peers = v.external_peers.clone();
        out.push(Wanted {
            config: c,
            port: role.external_port,
        });
        for w in &out {
            if let Err(e) = w.config.validate() {
                return fail(format!("{}: {e}", w.config.name));
            }
        }
        out
    }

    /// Makes the generated instances what `wanted` says: one no longer wanted, or wanted
    /// with another VRID or port, is stopped (a master sends priority 0 and gives its
    /// addresses up) and removed; one whose parameters changed is reconfigured in place,
    /// keeping its state; a new one is added and started as BACKUP. The wanted ones form
    /// the sync group of `group`.
    fn reconcile(
        &mut self,
        wanted: Vec<Wanted>,
        group: Option<&str>,
        t: &mut Tables,
        cell: &SnapshotCell,
        io: &dyn VrrpIo,
    ) {
        let now = self.now;
        if let Some(old) = self.generated_group.take() {
            if Some(old.as_str()) != group || wanted.is_empty() {
                let _ = self.router.set_group(&sync_group_name(&old), &[]);
            } else {
                self.generated_group = Some(old);
            }
        }
        for i in (0..self.bindings.len()).rev() {
            if !self.bindings[i].generated {
                continue;
            }
            let c = self.router.instances()[i].config();
            let keep = wanted.iter().any(|w| {
                w.config.name == c.name
                    && w.config.vrid == c.vrid
                    && w.port == self.bindings[i].port
            });
            if keep {
                continue;
            }
            tracing::info!(instance = %c.name, vrid = c.vrid, "VRRP instance of the gateway group removed");
            self.router.stop(now, i);
            self.carry_out(t, cell, io);
            self.router.remove(i);
            let b = self.bindings.remove(i);
            if !self.bindings.iter().any(|x| x.port == b.port) {
                if let Err(e) = t.set_port_vrrp(b.port, false) {
                    tracing::error!(error = %e, "cannot unmark a VRRP port");
                }
            }
        }
        let mut members = Vec::new();
        for w in wanted {
            let found = self.bindings.iter().enumerate().position(|(i, b)| {
                b.generated && self.router.instances()[i].config().name == w.config.name
            });
            match found {
                Some(i) => {
                    members.push(i);
                    if *self.router.instances()[i].config() == w.config {
                        continue;
                    }
                    let name = w.config.name.clone();
                    let changes = describe_changes(self.router.instances()[i].config(), &w.config);
                    match self.router.reconfigure(now, i, w.config) {
                        Ok(()) => tracing::info!(instance = %name, %changes,
                            "VRRP instance of the gateway group changed in place"),
                        Err(e) => tracing::error!(instance = %name, error = %e,
                            "VRRP instance of the gateway group not changed"),
                    }
                }
                None => {
                    let name = w.config.name.clone();
                    let vrid = w.config.vrid;
                    match self.router.add(now, w.config) {
                        Ok(i) => {
                            self.bindings.push(Binding {
                                port: w.port,
                                prefixes: Vec::new(),
                                extra: Vec::new(),
                                track: Vec::new(),
                                notify: Notify::default(),
                                installed: false,
                                generated: true,
                            });
                            if let Err(e) = t.set_port_vrrp(w.port, true) {
                                tracing::error!(error = %e, "cannot mark a VRRP port");
                            }
                            members.push(i);
                            tracing::info!(instance = %name, vrid, group = group.unwrap_or(""),
                                "VRRP instance of the gateway group started");
                        }
                        Err(e) => tracing::error!(instance = %name, error = %e,
                            "VRRP instance of the gateway group not started"),
                    }
                }
            }
        }
        if let (Some(g), false) = (group, members.is_empty()) {
            if let Err(e) = self.router.set_group(&sync_group_name(g), &members) {
                tracing::error!(error = %e, "cannot form the gateway group's sync group");
            }
            self.generated_group = Some(g.to_owned());
        }
        self.carry_out(t, cell, io);
        if t.needs_publish() {
            cell.publish(t.snapshot());
        }
    }

    fn set_installed(&mut self, i: usize, on: bool, t: &mut Tables) {
        let b = &mut self.bindings[i];
        if b.installed == on {
            return;
        }
        b.installed = on;
        for &a in b.prefixes.iter().chain(&b.extra) {
            let r = if on {
                t.add_address(b.port, a)
            } else {
                t.del_address(b.port, a)
            };
            if let Err(e) = r {
                tracing::error!(addr = %a.addr, error = %e, on, "cannot change a virtual address");
            }
        }
        let port = b.port;
        self.refresh_vmacs(port, t);
    }

    /// use_vmac: the port accepts the virtual MACs of the instances it is master of and
    /// answers ARP for their addresses from them.
    fn refresh_vmacs(&self, port: u16, t: &mut Tables) {
        let vmacs: Vec<_> = self
            .bindings
            .iter()
            .zip(self.router.instances())
            .filter(|(x, inst)| x.port == port && x.installed && inst.config().use_vmac)
            .flat_map(|(x, inst)| {
                let m = envelope::virtual_mac(inst.config().vrid);
                x.prefixes.iter().chain(&x.extra).map(move |p| (p.addr, m))
            })
            .collect();
        if let Err(e) = t.set_port_vmacs(port, vmacs) {
            tracing::error!(error = %e, "cannot set the virtual MACs");
        }
    }

    fn notify(&mut self, i: usize, to: State, own: bool) {
        let inst = &self.router.instances()[i];
        let name = inst.config().name.clone();
        let prio = inst.effective_priority().to_string();
        let n = &self.bindings[i].notify;
        let mut scripts: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(s) = specific(n, to) {
            scripts.push((s.clone(), Vec::new()));
        }
        if let Some(s) = &n.any {
            let args = vec!["INSTANCE".into(), name.clone(), to.name().into(), prio];
            scripts.push((s.clone(), args));
        }
        // A group's hooks run once per group transition: for the member that moved first.
        if let (true, Some(g)) = (own, self.router.group_of(i)) {
            if let Some(gn) = self.group_notify.get(g) {
                if let Some(s) = specific(gn, to) {
                    scripts.push((s.clone(), Vec::new()));
                }
                if let Some(s) = &gn.any {
                    let args = vec!["GROUP".into(), g.to_string(), to.name().into()];
                    scripts.push((s.clone(), args));
                }
            }
        }
        for (script, args) in scripts {
            let mut words = script.split_whitespace();
            let Some(program) = words.next() else {
                continue;
            };
            match Command::new(program)
                .args(words)
                .args(&args)
                .stdin(Stdio::null())
                .spawn()
            {
                Ok(child) => self.children.push(child),
                Err(e) => {
                    *self.rx_errors.entry("notify_failed").or_default() += 1;
                    tracing::warn!(%script, error = %e, "notify script did not start");
                }
            }
        }
    }

    /// What `show vrrp` reports.
    pub fn info(&self, t: &Tables) -> VrrpInfo {
        let instances = self
            .router
            .instances()
            .iter()
            .zip(&self.bindings)
            .enumerate()
            .map(|(i, (inst, b))| {
                let c = inst.config();
                let s = inst.status();
                let st = inst.stats();
                VrrpInstanceInfo {
                    name: c.name.clone(),
                    port: t.port_name(b.port).unwrap_or("?").to_string(),
                    vrid: c.vrid,
                    version: match c.version {
                        Version::V2 => 2,
                        Version::V3 => 3,
                    },
                    state: s.state.name().to_string(),
                    priority: c.priority,
                    effective_priority: s.effective_priority,
                    interval: c.interval(),
                    preempt: c.preempt,
                    addresses: b
                        .prefixes
                        .iter()
                        .chain(&b.extra)
                        .filter_map(|p| Ipv4Cidr::new(p.addr, p.len))
                        .collect(),
                    master: s.master.map(|m| m.0),
                    master_priority: s.master.map_or(0, |m| m.1),
                    in_state: self.now.saturating_sub(s.since),
                    last_cause: s.last_cause.map(|c| c.to_string()).unwrap_or_default(),
                    transitions: st.transitions,
                    became_master: st.became_master,
                    adverts_rx: st.adverts_rx,
                    adverts_tx: st.adverts_tx,
                    priority_zero_rx: st.priority_zero_rx,
                    priority_zero_tx: st.priority_zero_tx,
                    discards: Discard::ALL
                        .iter()
                        .map(|d| (d.name().to_string(), st.discards[*d as usize]))
                        .collect(),
                    sync_group: self.router.group_of(i).map(str::to_string),
                    source: match (&self.generated_group, b.generated) {
                        (Some(g), true) => format!("gateway-group {g}"),
                        _ => "keepalived.conf".to_owned(),
                    },
                    peers: c.unicast_peers.clone(),
                }
            })
            .collect();
        VrrpInfo {
            problems: self.problems.clone(),
            instances,
            rx_errors: self
                .rx_errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// What differs between two configurations of one instance, for the log.
fn describe_changes(old: &Config, new: &Config) -> String {
    let mut out = Vec::new();
    if old.priority != new.priority {
        out.push(format!("priority {} -> {}", old.priority, new.priority));
    }
    if old.interval_cs != new.interval_cs {
        out.push(format!(
            "interval {:?} -> {:?}",
            old.interval(),
            new.interval()
        ));
    }
    if old.version != new.version {
        out.push("version".to_owned());
    }
    if old.preempt != new.preempt || old.preempt_delay != new.preempt_delay {
        out.push(format!(
            "preempt {} ({:?}) -> {} ({:?})",
            old.preempt, old.preempt_delay, new.preempt, new.preempt_delay
        ));
    }
    if old.unicast_peers != new.unicast_peers {
        out.push(format!(
            "peers {:?} -> {:?}",
            old.unicast_peers, new.unicast_peers
        ));
    }
    if old.addresses != new.addresses {
        out.push("addresses".to_owned());
    }
    if old.primary != new.primary {
        out.push(format!("source {} -> {}", old.primary, new.primary));
    }
    out.join(", ")
}

fn specific(n: &Notify, to: State) -> Option<&String> {
    match to {
        State::Master => n.master.as_ref(),
        State::Backup => n.backup.as_ref(),
        State::Fault => n.fault.as_ref(),
        State::Init => n.stop.as_ref(),
    }
}

/// Counter name of a refused frame.
fn frame_error_name(e: &FrameError) -> &'static str {
    match e {
        FrameError::Truncated(_) => "truncated",
        FrameError::NotIpv4 => "not_ipv4",
        FrameError::Ipv4Checksum => "ipv4_checksum",
        FrameError::Fragment => "fragment",
        FrameError::NotVrrp(_) => "not_vrrp",
        FrameError::Ttl(_) => "ttl",
        FrameError::Vrrp(w) => match w {
            aegis_vrrp::wire::Error::Truncated { .. } => "truncated",
            aegis_vrrp::wire::Error::Version(_) => "version",
            aegis_vrrp::wire::Error::MessageType(_) => "message_type",
            aegis_vrrp::wire::Error::Checksum { .. } => "vrrp_checksum",
            aegis_vrrp::wire::Error::Interval(_) => "interval",
            aegis_vrrp::wire::Error::Encode(_) => "encode",
        },
    }
}

/// The daemon's [`VrrpIo`]: worker 0's injection queue, the DPDK ports' link state and
/// the session sync that commits before a claim.
pub struct DaemonIo<'a> {
    /// Worker 0's queue.
    pub inject: &'a crossbeam_queue::ArrayQueue<Injection>,
    /// The ports.
    pub ports: &'a [(crate::port::Port, String)],
    /// Session sync, if configured.
    pub sync: Option<&'a std::sync::Mutex<super::sync::SyncDriver>>,
    /// The control-plane feed, if any: whether its configuration is current
    /// ([`super::feed::Feed::current`]) decides whether a claim checks the synced sessions
    /// at once or once it is.
    pub feed: Option<&'a super::feed::Feed>,
}

impl VrrpIo for DaemonIo<'_> {
    fn send(&self, port: u16, frame: Vec<u8>) -> bool {
        self.inject.push(Injection { port, frame }).is_ok()
    }

    fn link_up(&self, port: u16) -> bool {
        self.ports
            .get(usize::from(port))
            .is_none_or(|(p, _)| p.link().map(|l| l.up).unwrap_or(true))
    }

    fn before_claim(&self, instance: &str) {
        if let Some(s) = self.sync {
            let mut s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Every claim commits; only the sync instance's (the one whose state decides
            // who streams) checks the sessions, so the check's deletes are streamed.
            s.commit();
            if s.vrrp_instance() == instance {
                s.check_claim(self.feed.is_none_or(super::feed::Feed::current));
            }
        }
    }
}

#[cfg(test)]
mod tests;
