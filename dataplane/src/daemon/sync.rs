//! The gateway's session sync on the control thread (`[sync]` in host.toml): runs the
//! `aegis-sessionsync` stream ends over UDP served by the dataplane itself, in the role
//! the VRRP instance named by `sync.vrrp_instance` gives this gateway.
//!
//! - **Master**: every NAT session event of the workers ([`SyncChannel::events`]) is kept in
//!   [`SyncDriver`]'s session map and queued to one [`Sender`] per peer; a peer that joins,
//!   restarts or falls behind gets a bulk resync of the map. Each mastership starts a new
//!   epoch, so the backups resync from the new master.
//! - **Backup**: the [`Receiver`] applies the master's stream to a journaled [`Replica`];
//!   every change is handed at once ([`Install`]) to the NAT worker that owns the session
//!   ([`crate::nat::owner::of_record`]; a removal, which carries no translation kind, to
//!   each worker that may hold it), so the backup's NAT tables follow the master's
//!   continuously. Acks and resync requests go back to the
//!   master (the source of the last sequenced datagram; before one, to every peer).
//! - **Commit before claim**: when VRRP is about to make this gateway master,
//!   [`SyncDriver::commit`] applies what has arrived, hands the workers every change still
//!   pending and waits until they have installed all of them; only then are the
//!   virtual addresses installed and gratuitous ARP sent. A backup whose bulk resync has
//!   not completed holds VRRP preemption (no failback before resync).
//!
//! - **Peers**: host.toml `[sync] peers`, until the control plane assigns the group's sync
//!   members ([`SyncDriver::apply_peers`], from the feed): then datagrams are accepted from
//!   every other member, the master streams to the assigned ones only (a new one gets a
//!   bulk resync at once, a dropped one is forgotten), and an unassigned member is a spare
//!   that asks nobody for anything.
//!
//! Datagrams leave through worker 0's injection queue as Ethernet/IPv4/UDP frames to the
//! peer's MAC from the neighbour table (an unresolved peer is resolved, and the stream's
//! resend covers the datagram lost meanwhile).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_sessionsync::wire::Kind;
use aegis_sessionsync::{Change, Error, Key, Receiver, Replica, Sender, SenderConfig};

use crate::ctl::{SyncInfo, SyncPeerInfo};
use crate::overlay::gateway::SyncPeers;
use crate::state::Tables;
use crate::sync::{Install, SyncChannel, SyncConfig};
use crate::wire::{checksum, ipv4, udp};

use super::vrrp::VrrpIo;

/// Longest a takeover waits for the worker to install the pending sessions.
pub const COMMIT_LIMIT: Duration = Duration::from_secs(1);
/// Largest UDP payload the stream builds (the IPv4 MTU of the sync port must carry it).
const SYNC_MTU: usize = 1400;
/// TTL of sync datagrams (peers are on link).
const TTL: u8 = 64;

enum Role {
    Backup {
        receiver: Box<Receiver>,
        master: Option<Ipv4Addr>,
    },
    Master {
        epoch: u32,
        senders: Vec<(Ipv4Addr, Sender)>,
    },
}

/// Who the driver talks to: host.toml's peers, or the control plane's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Peers {
    /// Datagrams from these are accepted.
    accept: Vec<Ipv4Addr>,
    /// The master streams to these.
    stream_to: Vec<Ipv4Addr>,
    /// Not an assigned member: streamed to by nobody, asks nobody.
    spare: bool,
    /// The control plane's assignment generation; `None`: host.toml.
    generation: Option<u64>,
}

impl Peers {
    fn from_config(cfg: &SyncConfig) -> Peers {
        Peers {
            accept: cfg.peers.clone(),
            stream_to: cfg.peers.clone(),
            spare: false,
            generation: None,
        }
    }

    fn from_controlplane(p: &SyncPeers) -> Peers {
        let mut accept = p.members.clone();
        for a in &p.stream_to {
            if !accept.contains(a) {
                accept.push(*a);
            }
        }
        Peers {
            accept,
            stream_to: p.stream_to.clone(),
            spare: p.spare,
            generation: Some(p.generation),
        }
    }

    fn source(&self) -> String {
        match self.generation {
            None => "host.toml".into(),
            Some(g) => format!("control plane (generation {g})"),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Transport {
    tx: u64,
    rx: u64,
    unresolved: u64,
    tx_full: u64,
    unknown_peer: u64,
}

/// The session-sync driver.
pub struct SyncDriver {
    cfg: SyncConfig,
    peers: Peers,
    peer_changes: u64,
    key: Key,
    channel: Arc<SyncChannel>,
    role: Role,
    since: Duration,
    role_changes: u64,
    sessions: Replica,
    /// Installs not yet queued, each with the worker it goes to.
    backlog: VecDeque<(usize, Install)>,
    pushed: u64,
    epochs: u32,
    ident: u16,
    transport: Transport,
    rejected: [u64; 5],
    last_commit: Option<(u64, Duration)>,
    /// A claim whose check of the installed sessions waits for the control plane's
    /// configuration to be current ([`SyncDriver::commit`], [`SyncDriver::settle`]).
    check_pending: bool,
}

impl std::fmt::Debug for SyncDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDriver")
            .field("cfg", &self.cfg)
            .field("master", &self.is_master())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SyncDriver {
    /// A driver that starts as backup (VRRP decides), over `channel`.
    pub fn new(cfg: SyncConfig, channel: Arc<SyncChannel>, now: Duration) -> SyncDriver {
        let key = Key::new(&cfg.key);
        let receiver = Box::new(Receiver::new(cfg.group, node_id(&cfg), key.clone()));
        SyncDriver {
            peers: Peers::from_config(&cfg),
            peer_changes: 0,
            cfg,
            key,
            channel,
            role: Role::Backup {
                receiver,
                master: None,
            },
            since: now,
            role_changes: 0,
            sessions: Replica::journaled(),
            backlog: VecDeque::new(),
            pushed: 0,
            epochs: 0,
            ident: 0,
            transport: Transport::default(),
            rejected: [0; 5],
            last_commit: None,
            check_pending: false,
        }
    }

    /// The dataplane port the datagrams use.
    pub fn port(&self) -> u16 {
        self.cfg.port
    }

    /// The VRRP instance that decides the role.
    pub fn vrrp_instance(&self) -> &str {
        &self.cfg.vrrp_instance
    }

    /// True while this gateway streams.
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master { .. })
    }

    /// True when this gateway may take over from a live master: a master always is; a
    /// backup once its bulk resync in the master's current epoch completed.
    pub fn synced(&self) -> bool {
        match &self.role {
            Role::Master { .. } => true,
            Role::Backup { receiver, .. } => receiver.synced(),
        }
    }

    /// After [`SyncDriver::commit`] for the sync instance's claim: the workers check the
    /// installed sessions against this gateway's own NAT configuration
    /// ([`crate::sync::SyncChannel::claims`]; their next poll starts the pass). If the
    /// configuration is not `current` (from the control plane: nothing received live yet,
    /// or the stream is down, so it may be older than the old master's), the check waits
    /// until [`SyncDriver::settle`] is told it is.
    pub fn check_claim(&mut self, current: bool) {
        if current {
            self.channel.claimed();
            self.check_pending = false;
        } else {
            self.check_pending = true;
            tracing::warn!(
                "session sync: claiming while the control plane's configuration is not current; the synced sessions are checked against it once it is"
            );
        }
    }

    /// Called every control round with whether the control plane's configuration is
    /// current: a claim's check put off by [`SyncDriver::commit`] is made now if it is
    /// and this gateway is still master.
    pub fn settle(&mut self, current: bool) {
        if !self.check_pending || !current {
            return;
        }
        self.check_pending = false;
        if self.is_master() {
            tracing::info!("session sync: the control plane's configuration is current; checking the sessions taken over against it");
            self.channel.claimed();
        }
    }

    /// Follows the VRRP state: `master` makes this gateway stream (a new epoch), anything
    /// else makes it listen.
    pub fn set_master(&mut self, master: bool, now: Duration) {
        if master == self.is_master() {
            return;
        }
        if !master {
            self.check_pending = false;
        }
        self.keep_rejections();
        self.role_changes += 1;
        self.since = now;
        if master {
            self.epochs = self.epochs.wrapping_add(1);
            let epoch = new_epoch(self.epochs);
            let node = node_id(&self.cfg);
            let senders = self
                .peers
                .stream_to
                .iter()
                .map(|&p| (p, new_sender(&self.cfg, &self.key, node, epoch)))
                .collect();
            // What was installed as backup is ours now; its journal is history.
            self.sessions.take_changes();
            self.backlog.clear();
            tracing::info!(
                epoch,
                sessions = self.sessions.len(),
                "session sync: master"
            );
            self.role = Role::Master { epoch, senders };
        } else {
            tracing::info!(
                sessions = self.sessions.len(),
                "session sync: backup, waiting for the master's bulk resync"
            );
            self.role = Role::Backup {
                receiver: Box::new(Receiver::new(
                    self.cfg.group,
                    node_id(&self.cfg),
                    self.key.clone(),
                )),
                master: None,
            };
        }
    }

    /// Follows the control plane's choice of sync peers (`None`: host.toml's). A master
    /// drops the senders of members no longer assigned and starts a bulk resync to each
    /// newly assigned one at once; a backup that becomes a spare forgets its replica's
    /// sync state (it is streamed to by nobody, so it is not synced and holds preemption).
    pub fn apply_peers(&mut self, from_controlplane: Option<&SyncPeers>) {
        let next = match from_controlplane {
            Some(p) => Peers::from_controlplane(p),
            None => Peers::from_config(&self.cfg),
        };
        if next == self.peers {
            return;
        }
        tracing::info!(
            old_source = %self.peers.source(),
            new_source = %next.source(),
            old_stream_to = ?self.peers.stream_to,
            new_stream_to = ?next.stream_to,
            spare = next.spare,
            "session sync: peer set changed"
        );
        self.peer_changes += 1;
        let node = node_id(&self.cfg);
        if next.spare && !self.peers.spare && !self.is_master() {
            self.keep_rejections();
        }
        match &mut self.role {
            Role::Master { epoch, senders } => {
                let rejected = &mut self.rejected;
                senders.retain(|(p, s)| {
                    let keep = next.stream_to.contains(p);
                    if !keep {
                        // Its refusal counts stay in the totals.
                        for (a, b) in rejected.iter_mut().zip(s.stats().rejected) {
                            *a += b;
                        }
                        tracing::info!(peer = %p, "session sync: no longer streaming to this peer");
                    }
                    keep
                });
                for &p in &next.stream_to {
                    if senders.iter().any(|(q, _)| *q == p) {
                        continue;
                    }
                    let mut s = new_sender(&self.cfg, &self.key, node, *epoch);
                    tracing::info!(peer = %p, sessions = self.sessions.len(), "session sync: new standby, bulk resync");
                    s.begin_bulk(self.sessions.iter().copied());
                    senders.push((p, s));
                }
            }
            Role::Backup { receiver, master } if next.spare && !self.peers.spare => {
                **receiver = Receiver::new(self.cfg.group, node, self.key.clone());
                *master = None;
            }
            Role::Backup { .. } => {}
        }
        self.peers = next;
    }

    /// One round: the worker's events and received datagrams in, datagrams and installs
    /// out.
    pub fn step(&mut self, now: Duration, t: &mut Tables, io: &dyn VrrpIo) {
        self.take_events();
        self.receive_pending();
        let mut out: Vec<(Ipv4Addr, Vec<u8>)> = Vec::new();
        match &mut self.role {
            Role::Master { senders, .. } => {
                for (peer, s) in senders.iter_mut() {
                    if s.needs_bulk() {
                        tracing::info!(peer = %peer, sessions = self.sessions.len(), "session sync: bulk resync");
                        s.begin_bulk(self.sessions.iter().copied());
                    }
                    out.extend(s.poll(now).into_iter().map(|d| (*peer, d)));
                }
            }
            Role::Backup { receiver, master } => {
                let spare = self.peers.spare;
                for d in receiver.poll(now) {
                    match master {
                        // A spare answers a master that streams to it anyway (its feed
                        // may be behind), and asks nobody otherwise.
                        Some(m) => out.push((*m, d)),
                        None if spare => {}
                        None => out.extend(self.peers.accept.iter().map(|&p| (p, d.clone()))),
                    }
                }
            }
        }
        for (dst, payload) in out {
            self.send(dst, &payload, now, t, io);
        }
        self.queue_installs();
        self.flush_installs();
    }

    /// Commit before claim: applies every datagram that has arrived, hands the worker
    /// every pending change and waits (at most [`COMMIT_LIMIT`]) until it has installed
    /// them. Returns the sessions known and the time waited.
    pub fn commit(&mut self) -> (u64, Duration) {
        let t0 = Instant::now();
        self.receive_pending();
        self.queue_installs();
        let synced = self.synced();
        loop {
            self.flush_installs();
            if self.backlog.is_empty() && self.channel.installed.load(Relaxed) >= self.pushed {
                break;
            }
            if t0.elapsed() >= COMMIT_LIMIT {
                tracing::error!(
                    pending = self.pushed.saturating_sub(self.channel.installed.load(Relaxed)),
                    "session sync: the worker did not install every session in time; claiming anyway"
                );
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let done = (self.sessions.len() as u64, t0.elapsed());
        if !synced {
            tracing::warn!(
                sessions = done.0,
                "session sync: taking over before a bulk resync completed; sessions the master had and did not stream are lost"
            );
        }
        tracing::info!(
            sessions = done.0,
            waited_us = done.1.as_micros() as u64,
            "session sync: sessions committed before claiming"
        );
        self.last_commit = Some(done);
        done
    }

    fn take_events(&mut self) {
        let master = self.is_master();
        while let Some(r) = self.channel.events.pop() {
            if let Role::Master { senders, .. } = &mut self.role {
                self.sessions.apply(&r);
                for (_, s) in senders.iter_mut() {
                    s.push(r);
                }
            }
        }
        if master {
            // The master's map mirrors its own table: nothing to install.
            self.sessions.take_changes();
        }
    }

    fn receive_pending(&mut self) {
        while let Some(d) = self.channel.datagrams.pop() {
            self.transport.rx += 1;
            let src = Ipv4Addr::from(d.src);
            if !self.peers.accept.contains(&src) {
                self.transport.unknown_peer += 1;
                continue;
            }
            let bytes = d.payload();
            match &mut self.role {
                Role::Master { senders, .. } => {
                    if let Some((_, s)) = senders.iter_mut().find(|(p, _)| *p == src) {
                        let _ = s.receive(bytes);
                    }
                }
                Role::Backup { receiver, master } => {
                    let sequenced = bytes
                        .get(4)
                        .is_some_and(|&k| Kind::from_u8(k).is_some_and(Kind::sequenced));
                    if receiver.receive(bytes, &mut self.sessions).is_ok() && sequenced {
                        *master = Some(src);
                    }
                }
            }
        }
    }

    fn queue_installs(&mut self) {
        if self.is_master() {
            return;
        }
        let workers = self.channel.workers();
        for c in self.sessions.take_changes() {
            match c {
                Change::Upsert(r) => {
                    let w = crate::nat::owner::of_record(&r, workers);
                    self.backlog.push_back((w, Install::Upsert(r)));
                }
                Change::Remove(k) => {
                    let [a, b] = crate::nat::owner::of_key(&k, workers);
                    self.backlog.push_back((a, Install::Remove(k)));
                    if b != a {
                        self.backlog.push_back((b, Install::Remove(k)));
                    }
                }
            }
        }
    }

    /// Queues the backlog to the workers, in order; stops at the first full queue.
    fn flush_installs(&mut self) {
        while let Some((w, i)) = self.backlog.pop_front() {
            let Some(queue) = self.channel.installs.get(w) else {
                continue;
            };
            if let Err(i) = queue.push(i) {
                self.backlog.push_front((w, i));
                break;
            }
            self.pushed += 1;
        }
    }

    fn send(
        &mut self,
        dst: Ipv4Addr,
        payload: &[u8],
        now: Duration,
        t: &mut Tables,
        io: &dyn VrrpIo,
    ) {
        let port = self.cfg.port;
        let (Some(dst_mac), Some(src_mac)) = (t.neighbours().lookup(port, dst), t.port_mac(port))
        else {
            t.request(port, dst, now);
            self.transport.unresolved += 1;
            return;
        };
        self.ident = self.ident.wrapping_add(1);
        let frame = udp_frame(
            src_mac,
            dst_mac,
            self.cfg.address,
            dst,
            self.cfg.udp_port,
            self.ident,
            payload,
        );
        if io.send(port, frame) {
            self.transport.tx += 1;
        } else {
            self.transport.tx_full += 1;
        }
    }

    fn keep_rejections(&mut self) {
        let r = self.current_rejections();
        for (a, b) in self.rejected.iter_mut().zip(r) {
            *a += b;
        }
    }

    fn current_rejections(&self) -> [u64; 5] {
        let mut out = [0; 5];
        match &self.role {
            Role::Master { senders, .. } => {
                for (_, s) in senders {
                    for (o, v) in out.iter_mut().zip(s.stats().rejected) {
                        *o += v;
                    }
                }
            }
            Role::Backup { receiver, .. } => out = receiver.stats().rejected,
        }
        out
    }

    /// What `show sync` and the metrics report.
    pub fn info(&self, now: Duration) -> SyncInfo {
        let current = self.current_rejections();
        let mut info = SyncInfo {
            role: if self.is_master() { "master" } else { "backup" }.into(),
            group: self.cfg.group,
            address: Some(self.cfg.address),
            udp_port: self.cfg.udp_port,
            vrrp_instance: self.cfg.vrrp_instance.clone(),
            in_role: now.saturating_sub(self.since),
            role_changes: self.role_changes,
            sessions: self.sessions.len() as u64,
            synced: self.synced(),
            installs_pushed: self.pushed,
            installs_done: self.channel.installed.load(Relaxed),
            installs_failed: self.channel.install_failed.load(Relaxed),
            events_lost: self.channel.events_lost.load(Relaxed),
            tx_datagrams: self.transport.tx,
            rx_datagrams: self.transport.rx,
            tx_unresolved: self.transport.unresolved,
            tx_queue_full: self.transport.tx_full,
            rx_unknown_peer: self.transport.unknown_peer,
            rejected: Error::ALL
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name().to_string(), self.rejected[i] + current[i]))
                .collect(),
            last_commit: self.last_commit,
            peers_from: self.peers.source(),
            stream_to: self.peers.stream_to.clone(),
            spare: self.peers.spare,
            peer_changes: self.peer_changes,
            ..SyncInfo::default()
        };
        match &self.role {
            Role::Master { senders, .. } => {
                info.peers = senders
                    .iter()
                    .map(|(p, s)| {
                        let st = s.stats();
                        SyncPeerInfo {
                            address: *p,
                            lag: s.lag() as u64,
                            oldest_unacked: s.oldest_unacked(now),
                            events: st.events,
                            datagrams: st.datagrams,
                            resends: st.resends,
                            acks: st.acks,
                            bulk_resyncs: st.bulk_resyncs,
                            bulk_sessions: st.bulk_sessions,
                        }
                    })
                    .collect();
            }
            Role::Backup { receiver, master } => {
                let st = receiver.stats();
                info.master = *master;
                info.applied = st.applied;
                info.events_applied = st.events;
                info.duplicates = st.duplicates;
                info.out_of_order = st.out_of_order;
                info.bulk_completed = st.bulk_completed;
                info.resync_requests = st.resync_requests;
            }
        }
        info
    }
}

/// A stream end towards one peer, in `epoch`.
fn new_sender(cfg: &SyncConfig, key: &Key, node: u32, epoch: u32) -> Sender {
    let mut c = SenderConfig::new(cfg.group, node, epoch);
    c.mtu = SYNC_MTU;
    Sender::new(c, key.clone())
}

/// This gateway's node id in the stream: its sync address.
fn node_id(cfg: &SyncConfig) -> u32 {
    u32::from(cfg.address)
}

/// A stream epoch nobody used before: the wall clock in milliseconds, mixed with how many
/// masterships this process has had (two in one millisecond still differ).
fn new_epoch(n: u32) -> u32 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (ms as u32) ^ n.rotate_left(24)
}

/// An Ethernet/IPv4/UDP frame carrying `payload`, with the UDP checksum filled in.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
    ident: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = udp::HEADER_LEN + payload.len();
    let mut f = vec![0u8; 14 + 20 + udp_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::emit_header(
        &mut f[14..34],
        (20 + udp_len) as u16,
        ident,
        TTL,
        ipv4::PROTO_UDP,
        u32::from(src),
        u32::from(dst),
    );
    udp::emit(&mut f[34..42], port, port, payload.len());
    f[42..].copy_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = ipv4::PROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let c = !checksum::fold(checksum::sum(&f[34..], checksum::sum(&pseudo, 0)));
    // A computed zero is sent as all ones (RFC 768: zero means "no checksum").
    f[40..42].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f
}

#[cfg(test)]
mod tests;
