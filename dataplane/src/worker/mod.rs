//! The worker: one per lcore, run to completion — for each port, rx burst → graph → tx
//! burst; then packets the control thread injected; then the hold queue; then connection
//! expiry and connection-table dumps the control thread asked for ([`dump`]); then capture
//! and trace-watch starts and stops ([`crate::capture`], [`crate::trace::watch`]); then the
//! idle policy. Capture points: port rx (before the graph), port tx (before the tx burst),
//! drops and graph nodes (in the graph); a trace watch matches at port rx (the burst of a
//! watched port enters through [`Graph::input_watched`]) and in `geneve-input`. The worker
//! reads the snapshot through its [`SnapshotReader`] (one atomic load per poll unless
//! something changed) and never locks or allocates on the packet path.

pub mod dpdk;
pub mod dump;
pub mod io;
pub mod poll;

use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::buf::PacketBuf;
use crate::capture::{CaptureHub, Point, TapCommand};
use crate::graph::stats::{bump, ClockSampling, Lap};
use crate::graph::{
    ControlEvent, DropReason, Graph, GraphEnv, TxFrame, WorkerStats, SLOT_PORT_RX, SLOT_PORT_TX,
};
use crate::state::SnapshotReader;
use crate::trace::{TraceChannel, Tracer, WatchCommand, WatchHub};
use dump::{DumpRequest, DUMP_QUEUE};
use io::PortQueues;
use poll::{Backoff, PollMode};

/// Capacity of the worker → control event queue.
pub const EVENT_QUEUE: usize = 1024;
/// Capacity of the control → worker injection queue.
pub const INJECT_QUEUE: usize = 1024;
/// Packets each worker's hand-off ring holds.
pub const HANDOFF_RING: usize = 4096;
/// The expiry sweep goes over the whole connection table once per this period (the shortest
/// timeout is 10 s, and lookups remove expired entries they meet anyway), a few slots at a
/// time: the budget grows with the time since the last sweep, not with the polls, so a
/// busy worker does not spend memory bandwidth on it per burst.
const CONNTRACK_SWEEP_PERIOD_NS: u64 = 2_000_000_000;
/// Fewest slots one sweep step looks at (fewer are carried to a later poll).
const CONNTRACK_SWEEP_MIN: usize = 64;
/// How often held packets are checked for expiry.
const HOLD_CHECK_NS: u64 = 10_000_000;
/// Time between two slices of the NAT expiry sweep (1 ms).
const NAT_SWEEP_NS: u64 = 1_000_000;
/// NAT slots checked per slice: 1,024 per ms walks a 262,144-session table in about
/// 0.26 s, far below the shortest timeout (ICMP, 60 s).
const NAT_SWEEP_SLICE: usize = 1024;

/// A frame the control thread wants sent on a port (ARP requests, announcements).
#[derive(Debug, Clone)]
pub struct Injection {
    /// Port index.
    pub port: u16,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// A probe the control thread wants to enter the graph at a VM port's ingress, traced.
#[derive(Debug, Clone)]
pub struct ProbeInjection {
    /// The VM's port index.
    pub port: u16,
    /// The frame, as the VM would send it (see [`crate::trace::probe`]).
    pub frame: Vec<u8>,
    /// The trace id (with [`crate::trace::PROBE_BIT`]).
    pub id: u64,
}

/// Probes a worker can have waiting.
pub const PROBE_QUEUE: usize = 64;

/// What the control thread keeps of each worker: its counters and its queues.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    /// Worker index.
    pub id: usize,
    /// Its counters.
    pub stats: Arc<WorkerStats>,
    /// Events it reports.
    pub events: Arc<ArrayQueue<ControlEvent>>,
    /// Frames to send through it.
    pub inject: Arc<ArrayQueue<Injection>>,
    /// Connection-table dumps asked of it.
    pub dumps: Arc<ArrayQueue<DumpRequest>>,
    /// Packet captures to start or stop ([`CaptureHub`]).
    pub captures: Arc<ArrayQueue<TapCommand>>,
    /// Probes to inject at a port's ingress.
    pub probes: Arc<ArrayQueue<ProbeInjection>>,
    /// Hop records of traced packets, to the control thread.
    pub traces: Arc<TraceChannel>,
    /// Trace watches to start or stop ([`WatchHub`]).
    pub watches: Arc<ArrayQueue<WatchCommand>>,
}

impl WorkerHandle {
    /// A handle with fresh counters and queues.
    pub fn new(id: usize) -> Self {
        WorkerHandle {
            id,
            stats: Arc::new(WorkerStats::default()),
            events: Arc::new(ArrayQueue::new(EVENT_QUEUE)),
            inject: Arc::new(ArrayQueue::new(INJECT_QUEUE)),
            dumps: Arc::new(ArrayQueue::new(DUMP_QUEUE)),
            captures: CaptureHub::queue(),
            probes: Arc::new(ArrayQueue::new(PROBE_QUEUE)),
            traces: TraceChannel::new(),
            watches: WatchHub::queue(),
        }
    }
}

/// A time source: a cycle counter and its frequency, read as nanoseconds with a
/// multiply and a shift (no division on the worker's path).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    cycles: fn() -> u64,
    /// Nanoseconds per tick as a 32.32 fixed-point number.
    ns_per_tick: u64,
}

impl Clock {
    /// A clock reading `cycles`, which tick `hz` times a second.
    pub fn new(cycles: fn() -> u64, hz: u64) -> Clock {
        Clock {
            cycles,
            ns_per_tick: ((1_000_000_000u128 << 32) / u128::from(hz.max(1))) as u64,
        }
    }

    /// Nanoseconds on this clock.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        ((u128::from((self.cycles)()) * u128::from(self.ns_per_tick)) >> 32) as u64
    }

    /// A clock in nanoseconds from `std::time::Instant` (tests, tools without an EAL).
    pub fn monotonic() -> Clock {
        fn ns() -> u64 {
            static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            EPOCH
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_nanos() as u64
        }
        Clock::new(ns, 1_000_000_000)
    }
}

/// Worker settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Idle policy.
    pub poll_mode: PollMode,
    /// Packets per rx burst (1..=256).
    pub burst: usize,
    /// Connection-table entries.
    pub connections: usize,
    /// NAT sessions per worker (0: no NAT table; gateways with `[nat]`). Each worker's
    /// table allocates outside ports from its own slice ([`crate::nat::ports`]).
    pub nat_sessions: usize,
}

impl Worker<io::MemQueues> {
    /// A worker over `ports` in-memory queues (tests, tools without an EAL): busy polling,
    /// bursts of 32, 4096 connection-table entries, no NAT, the monotonic clock.
    pub fn in_memory(ports: usize, handle: &WorkerHandle, snap: SnapshotReader) -> Self {
        let cfg = WorkerConfig {
            poll_mode: PollMode::Busy,
            burst: 32,
            connections: 4096,
            nat_sessions: 0,
        };
        Worker::new(
            io::MemQueues::new(ports),
            handle,
            snap,
            cfg,
            Clock::monotonic(),
        )
    }
}

/// One worker: its queues, its graph and its view of the snapshot.
pub struct Worker<Q: PortQueues> {
    queues: Q,
    graph: Graph<Q::Buf>,
    env: GraphEnv,
    snap: SnapshotReader,
    inject: Arc<ArrayQueue<Injection>>,
    dumps: Arc<ArrayQueue<DumpRequest>>,
    captures: Arc<ArrayQueue<TapCommand>>,
    watches: Arc<ArrayQueue<WatchCommand>>,
    probes: Arc<ArrayQueue<ProbeInjection>>,
    backoff: Backoff,
    burst: usize,
    clock: Clock,
    rx: TxFrame<Q::Buf>,
    next_hold_check: u64,
    /// This worker's index among the workers sharing hand-off rings (0 alone).
    me: usize,
    /// When the NAT table's next expiry slice is due.
    next_nat_sweep: u64,
    /// When the expiry sweep last ran.
    last_sweep_ns: u64,
    /// The identity of the NAT configuration the worker's sessions were last checked
    /// against ([`crate::nat::NatConfig::id`]).
    nat_seen: Option<u64>,
    /// The sync channel's claim count ([`crate::sync::SyncChannel::claims`]) when the
    /// sessions were last checked.
    claims_seen: u64,
    /// Where the check of the NAT sessions against a new configuration is, if one is
    /// under way ([`Worker::revoke_nat_sessions`]).
    nat_revoke: Option<Revocation>,
    stats: Arc<WorkerStats>,
    /// Which polls measure clocks (this poll's weight is the graph's).
    sampling: ClockSampling,
}

/// A pass over the NAT sessions removing those a new configuration no longer grants, a
/// slice per poll.
#[derive(Debug, Clone, Copy)]
struct Revocation {
    /// Next slot to check.
    next: usize,
    /// Where the pass ends: the table's high-water mark when it began (sessions created
    /// since were created under the new configuration).
    end: usize,
}

/// NAT table slots checked per poll after a NAT configuration change: 1024 slots are
/// 64 KiB of sessions read in order, a few microseconds, so a poll's packets wait little
/// for it. The pass covers the slots ever used (the peak number of sessions), not the
/// whole capacity: 100,000 sessions take about a hundred polls.
const NAT_REVOKE_SLICE: usize = 1024;

impl<Q: PortQueues> Worker<Q> {
    /// A worker over `queues`, reporting through `handle`.
    pub fn new(
        queues: Q,
        handle: &WorkerHandle,
        snap: SnapshotReader,
        cfg: WorkerConfig,
        clock: Clock,
    ) -> Self {
        let n = queues.n_ports();
        let mut env = GraphEnv::with_connections(
            handle.stats.clone(),
            handle.events.clone(),
            cfg.connections,
        );
        if cfg.nat_sessions > 0 {
            env.nat = Some(
                // The whole port range until [`Worker::with_handoff`] places the worker.
                crate::nat::NatTable::new(
                    cfg.nat_sessions,
                    0,
                    1,
                    crate::nat::NatTimeouts::default(),
                )
                // Events only when something streams them ([`Worker::with_sync`]).
                .without_events(),
            );
        }
        handle
            .stats
            .connection_capacity
            .store(env.conntrack.capacity() as u64, Relaxed);
        let nat_capacity = env.nat.as_ref().map_or(0, |t| t.capacity());
        handle
            .stats
            .nat_capacity
            .store(nat_capacity as u64, Relaxed);
        let mut graph = Graph::new(n, handle.stats.clone());
        graph.set_tracer(Tracer::new(handle.id as u16, handle.traces.clone()));
        Worker {
            queues,
            graph,
            env,
            snap,
            inject: handle.inject.clone(),
            dumps: handle.dumps.clone(),
            captures: handle.captures.clone(),
            watches: handle.watches.clone(),
            probes: handle.probes.clone(),
            backoff: Backoff::new(cfg.poll_mode),
            burst: cfg.burst.clamp(1, crate::graph::FRAME_CAP),
            clock,
            rx: TxFrame::new(),
            next_hold_check: 0,
            me: 0,
            next_nat_sweep: 0,
            last_sweep_ns: 0,
            nat_seen: None,
            claims_seen: 0,
            nat_revoke: None,
            stats: handle.stats.clone(),
            sampling: ClockSampling::new(),
        }
    }

    /// Makes this worker `me` of the workers sharing the hand-off `rings` (see
    /// [`crate::graph::Handoff`]): its NAT table takes worker `me`'s slice of the outside
    /// ports. Without it the worker hands nothing off.
    pub fn with_handoff(
        mut self,
        me: usize,
        rings: Arc<[ArrayQueue<crate::graph::Handed<Q::Buf>>]>,
    ) -> Self {
        if let Some(nat) = &mut self.env.nat {
            nat.set_worker(me, rings.len());
        }
        self.me = me;
        self.graph.set_handoff(me, rings);
        self
    }

    /// Connects this worker's NAT table to the control thread's session sync (every worker
    /// of a gateway shares one channel): its events are queued for the master's stream,
    /// and the installs the backup routed to this worker are applied between bursts.
    /// Without a NAT table the channel only carries received datagrams.
    pub fn with_sync(mut self, channel: Arc<crate::sync::SyncChannel>) -> Self {
        if let Some(nat) = &mut self.env.nat {
            nat.set_events(true);
        }
        self.env.sync = Some(channel);
        self
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let got = self.poll_once();
            if let Some(d) = self.backoff.after_poll(got) {
                bump(&self.stats.sleeps, 1);
                std::thread::sleep(d);
            }
        }
    }

    /// One pass over every port; returns the packets received.
    pub fn poll_once(&mut self) -> usize {
        let now = self.clock.now_ns();
        self.graph.set_clock_weight(self.sampling.next_weight());
        if self.snap.changed() {
            self.graph.release_held(self.snap.get(), now);
            self.graph.run(self.snap.get(), now, &mut self.env);
            self.flush();
        }
        // Every poll, not only when the snapshot changed just now: a snapshot published
        // during the previous poll was taken by its `get()` calls without a `changed()`.
        self.note_nat_config();
        let mut got = 0;
        for port in 0..self.queues.n_ports() {
            let lap = Lap::start(self.graph.clock_weight());
            self.queues.rx(port, &mut self.rx, self.burst);
            let n = self.rx.len();
            if n == 0 {
                continue;
            }
            lap.record(&self.stats, SLOT_PORT_RX, n as u64);
            got += n;
            let taps = self.graph.taps();
            if taps.rx_on(port) {
                for buf in &self.rx {
                    taps.capture(Point::Rx, port as u16, buf.data(), now);
                }
            }
            if self.graph.tracer().watches().rx_on(port as u16) {
                let snap = self.snap.get();
                self.graph
                    .input_watched(port as u16, self.rx.drain(..), snap, now);
            } else {
                self.graph.input(port as u16, self.rx.drain(..));
            }
            self.graph.run(self.snap.get(), now, &mut self.env);
            self.flush();
        }
        // Packets of flows this worker owns, received by other workers.
        let handed = self.graph.accept_handoff();
        if handed > 0 {
            got += handed;
            self.graph.run(self.snap.get(), now, &mut self.env);
            self.flush();
        }
        let injected = self.drain_injections() + self.drain_probes(now);
        if self.graph.has_held() && now >= self.next_hold_check {
            self.next_hold_check = now + HOLD_CHECK_NS;
            self.graph.release_held(self.snap.get(), now);
            self.graph.run(self.snap.get(), now, &mut self.env);
            self.flush();
        }
        self.sweep_connections(now);
        if let Some(nat) = &mut self.env.nat {
            self.stats.nat_sessions.store(nat.len() as u64, Relaxed);
            // Expired sessions are swept in slices paced by time, not on every poll (the
            // table is large and mostly cold: checking it per poll costs the hot path).
            if now >= self.next_nat_sweep {
                self.next_nat_sweep = now + NAT_SWEEP_NS;
                nat.sweep(now, NAT_SWEEP_SLICE);
            }
            if let Some(sync) = &self.env.sync {
                sync.serve(self.me, nat, now);
            }
        }
        if self.nat_revoke.is_some() {
            self.revoke_nat_sessions(now);
        }
        self.stats
            .connections
            .store(self.env.conntrack.len() as u64, Relaxed);
        if !self.dumps.is_empty() {
            dump::serve(&self.dumps, &self.env.conntrack, self.env.nat.as_ref(), now);
        }
        if !self.captures.is_empty() {
            while let Some(cmd) = self.captures.pop() {
                self.graph.taps_mut().apply(cmd);
            }
        }
        if !self.watches.is_empty() {
            while let Some(cmd) = self.watches.pop() {
                self.graph.tracer_mut().watches_mut().apply(cmd);
            }
        }
        bump(&self.stats.polls, 1);
        if got == 0 {
            bump(&self.stats.idle_polls, 1);
        }
        got + injected
    }

    /// If the snapshot's NAT configuration is a new one, starts a pass over the NAT table
    /// that removes the sessions it no longer grants (a floating IP or source NAT rule
    /// removed: replies must not keep reaching the old inside address, nor its traffic keep
    /// leaving with the old outside one). Compared by identity, so the worker holds no
    /// reference to an old configuration (dropping the last one would free it here).
    /// Also after this gateway claimed mastership ([`crate::sync::SyncChannel::claims`]):
    /// the sessions installed from the old master are checked against this gateway's own
    /// configuration.
    #[inline]
    fn note_nat_config(&mut self) {
        let Some(table) = &self.env.nat else {
            return;
        };
        let id = self.snap.get().nat.id();
        // A claim is taken once this worker's installs are all in its table (after a
        // commit that timed out, some may still be queued): the pass must cover them.
        // (The claim count is read first, with acquire: the installs queued before it was
        // bumped are then visible to the emptiness check.)
        let claims = self.env.sync.as_ref().map_or(0, |s| {
            let claims = s.claims.load(Ordering::Acquire);
            let waiting = s.installs.get(self.me).is_some_and(|q| !q.is_empty());
            if waiting {
                self.claims_seen
            } else {
                claims
            }
        });
        if self.nat_seen == Some(id) && self.claims_seen == claims {
            return;
        }
        self.nat_seen = Some(id);
        self.claims_seen = claims;
        // A pass under way starts over: every session against the newest.
        self.nat_revoke = (!table.is_empty()).then(|| Revocation {
            next: 0,
            end: table.high_water(),
        });
    }

    /// One slice of the pass [`Worker::note_nat_config`] started.
    fn revoke_nat_sessions(&mut self, now: u64) {
        let (Some(table), Some(r)) = (self.env.nat.as_mut(), self.nat_revoke.as_mut()) else {
            self.nat_revoke = None;
            return;
        };
        let end = (r.next + NAT_REVOKE_SLICE).min(r.end);
        let removed = table.revoke(&self.snap.get().nat, r.next..end, now);
        bump(&self.stats.nat_revoked, removed as u64);
        r.next = end;
        if r.next >= r.end || table.is_empty() {
            self.nat_revoke = None;
        }
    }

    /// Expires old connections a little at a time: the slots due since the last sweep at a
    /// pace of one whole table per [`CONNTRACK_SWEEP_PERIOD_NS`].
    fn sweep_connections(&mut self, now: u64) {
        let slots = self.env.conntrack.slots();
        let elapsed = now.saturating_sub(self.last_sweep_ns);
        let due = u128::from(elapsed) * slots as u128 / u128::from(CONNTRACK_SWEEP_PERIOD_NS);
        let due = usize::try_from(due).unwrap_or(slots).min(slots);
        if due >= CONNTRACK_SWEEP_MIN.min(slots) {
            self.env.conntrack.sweep(now, due);
            self.last_sweep_ns = now;
        }
    }

    /// Sends what the control thread queued for transmission.
    fn drain_injections(&mut self) -> usize {
        let mut n = 0;
        while let Some(inj) = self.inject.pop() {
            match self.queues.alloc_copy(&inj.frame) {
                Some(buf) => self.graph.inject_tx(inj.port, buf),
                None => self.stats.count_drop(DropReason::NoBuffers),
            }
            n += 1;
        }
        if n > 0 {
            self.flush();
        }
        n
    }

    /// Transmits every port's pending frame; what the driver refuses is dropped and counted.
    /// Puts waiting probes into the graph at their port's ingress and runs it. A probe
    /// that finds no buffer or no trace slot is not injected (its trace stays empty).
    fn drain_probes(&mut self, now: u64) -> usize {
        if self.probes.is_empty() {
            return 0;
        }
        let mut n = 0;
        while let Some(p) = self.probes.pop() {
            match self.queues.alloc_copy(&p.frame) {
                Some(buf) => {
                    let snap = self.snap.get();
                    if !self.graph.input_traced(p.port, buf, p.id, snap, now) {
                        self.graph
                            .tracer()
                            .channel()
                            .slots_full
                            .fetch_add(1, Relaxed);
                    }
                }
                None => self.stats.count_drop(DropReason::NoBuffers),
            }
            n += 1;
        }
        self.graph.run(self.snap.get(), now, &mut self.env);
        self.flush();
        n
    }

    fn flush(&mut self) {
        let stats = &self.stats;
        let weight = self.graph.clock_weight();
        let (frames, taps) = self.graph.tx_frames_and_taps();
        // The clock is read for captures only (nothing per flush when none runs).
        let now = if taps.is_empty() {
            0
        } else {
            self.clock.now_ns()
        };
        for (port, frame) in frames.iter_mut().enumerate() {
            if frame.is_empty() {
                continue;
            }
            if taps.tx_on(port) {
                for buf in frame.iter() {
                    taps.capture(Point::Tx, port as u16, buf.data(), now);
                }
            }
            let n = frame.len();
            let lap = Lap::start(weight);
            self.queues.tx(port, frame);
            lap.record(stats, SLOT_PORT_TX, n as u64);
            for buf in frame.drain(..) {
                stats.count_drop(DropReason::TxQueueFull);
                if taps.drops_on() {
                    let point = Point::Drop(DropReason::TxQueueFull);
                    taps.capture(point, port as u16, buf.data(), now);
                }
                drop(buf);
            }
        }
    }

    /// True while the worker runs a packet capture.
    pub fn is_capturing(&self) -> bool {
        !self.graph.taps().is_empty()
    }

    /// The worker's queues (tests inspect in-memory queues through this).
    pub fn queues_mut(&mut self) -> &mut Q {
        &mut self.queues
    }
}

#[cfg(test)]
mod tests;
