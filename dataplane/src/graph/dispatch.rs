//! The dispatcher: runs each node over its whole input frame in graph order, measures
//! calls/packets/clocks per node, and collects what comes out into per-port transmit
//! frames. Generic over the packet buffer, so the same code runs on mbufs and heap buffers.
//! Before a node runs, its input frame is offered to the captures that take that node
//! (`aegisctl dp capture --node`; one mask test per node call when none does).

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::frame::{Frame, Meta, Pkt, TxFrame};
use super::hold::HoldQueue;
use super::stats::{bump, Lap, WorkerStats};
use super::{DropReason, NodeId};
use crate::buf::PacketBuf;
use crate::capture::tap::node_bit;
use crate::capture::{Point, Taps};
use crate::conntrack::{ConnTable, Probe, Timeouts};
use crate::nodes;
use crate::nodes::overlay::InnerFlow;
use crate::state::snapshot::{Mac, Snapshot};
use crate::trace::{Action, Detail, Tracer};

/// Passes over the graph per burst: a second pass carries ICMP errors and local replies
/// back through `ip4-lookup`; a third is never needed but bounds the loop.
const MAX_PASSES: usize = 3;

/// Something a worker tells the control thread (lock-free queue, never blocks).
// The VRRP variant carries its frame inline: boxing it would allocate on a worker.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEvent {
    /// An ARP packet showed `ip` is at `mac` on `port` (`reply`: it answered us).
    NeighbourSeen {
        port: u16,
        ip: u32,
        mac: Mac,
        reply: bool,
    },
    /// A packet needed `ip` on `port` and its MAC is unknown: resolve it.
    NeighbourMiss { port: u16, ip: u32 },
    /// A VRRP advertisement arrived on a VRRP port (the control thread runs the protocol).
    Vrrp(PuntedFrame),
}

/// Bytes of the longest frame handed to the control thread: a VRRP advertisement with
/// 50 addresses (14 + 20 + 8 + 4 × 50 + 8).
pub const PUNT_CAP: usize = 256;

/// A copy of a whole frame for the control thread (fixed size: no allocation on a worker).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PuntedFrame {
    /// Port it arrived on.
    pub port: u16,
    len: u16,
    bytes: [u8; PUNT_CAP],
}

impl PuntedFrame {
    /// A copy of `data`, or `None` if it is longer than [`PUNT_CAP`].
    #[inline]
    pub fn new(port: u16, data: &[u8]) -> Option<PuntedFrame> {
        let mut bytes = [0u8; PUNT_CAP];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(PuntedFrame {
            port,
            len: data.len() as u16,
            bytes,
        })
    }

    /// The frame.
    pub fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for PuntedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PuntedFrame")
            .field("port", &self.port)
            .field("len", &self.len)
            .finish()
    }
}

/// A token bucket limiting generated ICMP errors, on the worker's clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: u64,
    burst: u64,
    ns_per_token: u64,
    last_ns: u64,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: u64, burst: u64) -> Self {
        TokenBucket {
            tokens: burst,
            burst,
            ns_per_token: 1_000_000_000 / rate.max(1),
            last_ns: 0,
        }
    }

    /// Takes a token if one is available at time `now_ns`.
    #[inline]
    pub fn take(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let fresh = elapsed / self.ns_per_token;
        if fresh > 0 {
            self.tokens = (self.tokens + fresh).min(self.burst);
            self.last_ns += fresh * self.ns_per_token;
            if self.tokens == self.burst {
                self.last_ns = now_ns;
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Per-worker environment the nodes use besides the snapshot.
pub struct GraphEnv {
    /// This worker's counters.
    pub stats: Arc<WorkerStats>,
    /// Events for the control thread.
    pub events: Arc<ArrayQueue<ControlEvent>>,
    /// ICMP error rate limiter.
    pub icmp_limit: TokenBucket,
    /// Identification field for generated IPv4 packets.
    pub next_ident: u16,
    /// Events that did not fit the queue (counted, never blocking).
    pub events_lost: u64,
    /// Scratch space for bulk lookups (reused every burst: no zeroing, no allocation).
    pub scratch: Box<LookupScratch>,
    /// This worker's connection table (stateful security groups).
    pub conntrack: ConnTable,
    /// This worker's NAT sessions (gateways with `[nat]`; `None` elsewhere).
    pub nat: Option<crate::nat::NatTable>,
    /// The session-sync queues to the control thread (gateways with `[sync]`).
    pub sync: Option<std::sync::Arc<crate::sync::SyncChannel>>,
}

/// Per-worker arrays a node fills for one frame (e.g. destinations and next hops for the
/// bulk FIB lookup).
pub struct LookupScratch {
    /// Keys, one per packet of the frame.
    pub keys: [u32; super::FRAME_CAP],
    /// Results, one per packet of the frame.
    pub values: [u32; super::FRAME_CAP],
    /// A byte per packet (e.g. a verdict).
    pub flags: [u8; super::FRAME_CAP],
    /// A 64-bit word per packet (e.g. a hash kept between two passes over the frame).
    pub hashes: [u64; super::FRAME_CAP],
    /// A connection-table probe per packet (`security-group`: the lookup its prefetch
    /// pass prepared).
    pub probes: [Option<Probe>; super::FRAME_CAP],
    /// An inner flow per packet (`security-group`: parsed once for both passes).
    pub flows: [InnerFlow; super::FRAME_CAP],
}

impl GraphEnv {
    /// A new environment with default ICMP limits (1000/s, burst 100 per worker) and a
    /// small connection table (tests; workers use [`GraphEnv::with_connections`]).
    pub fn new(stats: Arc<WorkerStats>, events: Arc<ArrayQueue<ControlEvent>>) -> Self {
        Self::with_connections(stats, events, 4096)
    }

    /// [`GraphEnv::new`] with a connection table of `connections` entries.
    pub fn with_connections(
        stats: Arc<WorkerStats>,
        events: Arc<ArrayQueue<ControlEvent>>,
        connections: usize,
    ) -> Self {
        GraphEnv {
            stats,
            events,
            icmp_limit: TokenBucket::new(1000, 100),
            next_ident: 1,
            events_lost: 0,
            scratch: Box::new(LookupScratch {
                keys: [0; super::FRAME_CAP],
                values: [0; super::FRAME_CAP],
                flags: [0; super::FRAME_CAP],
                hashes: [0; super::FRAME_CAP],
                probes: [None; super::FRAME_CAP],
                flows: [InnerFlow::NONE; super::FRAME_CAP],
            }),
            conntrack: ConnTable::with_seed(connections, Timeouts::default(), seed()),
            nat: None,
            sync: None,
        }
    }

    /// Sends an event to the control thread; a full queue loses it (and counts that).
    #[inline]
    pub fn event(&mut self, e: ControlEvent) {
        if self.events.push(e).is_err() {
            self.events_lost += 1;
        }
    }

    /// Sends an event that carries a packet; false if the queue was full (the caller
    /// drops the packet with [`DropReason::ControlQueueFull`](crate::graph::DropReason)).
    #[inline]
    pub fn try_event(&mut self, e: ControlEvent) -> bool {
        self.events.push(e).is_ok()
    }
}

/// What a node sees besides its frame: the snapshot, the time, the worker environment.
pub struct NodeCtx<'a> {
    /// The forwarding snapshot for this burst.
    pub snap: &'a Snapshot,
    /// Current time in nanoseconds on the worker's clock.
    pub now_ns: u64,
    /// Worker environment.
    pub env: &'a mut GraphEnv,
}

/// Where a node sends packets.
pub struct Outputs<'a, B, const TR: bool> {
    frames: &'a mut [Box<Frame<B>>; NodeId::COUNT],
    tx: &'a mut [TxFrame<B>],
    hold: &'a mut HoldQueue<B>,
    stats: &'a WorkerStats,
    handoff: &'a Handoff<B>,
    /// The worker's captures when one of them takes drops (checked once per graph run).
    taps: Option<&'a Taps>,
    /// The nodes some capture takes (bits as [`node_bit`]): a node that could skip another
    /// (e.g. `overlay-output` routing its outer packets itself) does not while that one is
    /// captured.
    node_taps: u32,
    now_ns: u64,
    /// The worker's tracer (used only for traced packets).
    tracer: &'a mut Tracer,
    /// The node running (named in hop records).
    node: NodeId,
    /// The snapshot of this run (hop records carry its control-plane revision; a probe
    /// sent to a VM port is consumed instead).
    snap: &'a Snapshot,
}

/// Flow hand-off between the workers of one dataplane: worker `i` receives packets other
/// workers give it on `rings[i]` (lock-free, bounded). Stateful nodes hand every packet
/// to the worker that owns its flow, so both directions of a connection meet the same
/// per-worker table: `security-group` by a symmetric hash of the 5-tuple, the NAT hooks
/// (`ip4-forward`, `gateway-output`) by the session's owner ([`crate::nat::owner`]). A
/// packet re-enters the graph of its owner at the node that handed it off ([`Handed`]).
pub struct Handoff<B> {
    /// This worker's index.
    pub me: usize,
    /// One inbound ring per worker.
    pub rings: Arc<[ArrayQueue<Handed<B>>]>,
}

/// A packet on a hand-off ring, with the node it re-enters the owner's graph at.
pub struct Handed<B> {
    /// The packet.
    pub pkt: Pkt<B>,
    /// The node that handed it off (where the owner resumes it).
    pub at: NodeId,
}

/// The worker of `workers` that owns a flow with hash `hash` (multiply-shift: uniform for
/// a uniform hash, no division).
#[inline(always)]
pub fn owner_of_hash(hash: u32, workers: usize) -> usize {
    ((u64::from(hash) * workers as u64) >> 32) as usize
}

impl<B> Handoff<B> {
    /// A single worker: nothing is ever handed off.
    pub fn single() -> Handoff<B> {
        Handoff {
            me: 0,
            rings: Arc::from(Vec::new()),
        }
    }

    /// Rings for `workers` workers of `capacity` packets each, shared by all of them.
    pub fn rings(workers: usize, capacity: usize) -> Arc<[ArrayQueue<Handed<B>>]> {
        (0..workers).map(|_| ArrayQueue::new(capacity)).collect()
    }

    /// The number of workers sharing the rings (1 without hand-off).
    #[inline(always)]
    pub fn workers(&self) -> usize {
        self.rings.len().max(1)
    }

    /// The worker owning a flow with symmetric hash `hash`, if it is not this one.
    #[inline(always)]
    pub fn other_owner(&self, hash: u32) -> Option<usize> {
        let n = self.rings.len();
        if n <= 1 {
            return None;
        }
        let owner = owner_of_hash(hash, n);
        (owner != self.me).then_some(owner)
    }

    /// `owner`, if it is another worker of the rings.
    #[inline(always)]
    pub fn other(&self, owner: usize) -> Option<usize> {
        (owner != self.me && owner < self.rings.len()).then_some(owner)
    }
}

impl<B: PacketBuf, const TR: bool> Outputs<'_, B, TR> {
    /// True if some capture takes the input of node `node` (a node that could do that
    /// node's work itself hands packets to it instead, so the capture sees them).
    #[inline(always)]
    pub fn captured(&self, node: NodeId) -> bool {
        self.node_taps & node_bit(node) != 0
    }

    /// True if the packet of `meta` is traced. Always false in the untraced variant
    /// (`TR` false: the graph runs a node so when no packet on this worker is traced and
    /// the node cannot start a trace), where every trace hook compiles away.
    #[inline(always)]
    pub fn traced(&self, meta: &Meta) -> bool {
        TR && meta.traced()
    }

    /// Sends every packet of `input` to `next` (untraced packets only: no hop is
    /// recorded). When `next` has nothing pending the frames trade places, a pointer swap
    /// instead of a move per packet; otherwise the packets are appended.
    #[inline(always)]
    pub fn to_all(&mut self, next: NodeId, input: &mut Box<Frame<B>>) {
        let dest = &mut self.frames[next as usize];
        if dest.is_empty() {
            std::mem::swap(dest, input);
            return;
        }
        for pkt in input.drain(..) {
            self.to(next, pkt.buf, pkt.meta);
        }
    }

    /// Sends the packet to `next`.
    #[inline(always)]
    pub fn to(&mut self, next: NodeId, buf: B, meta: Meta) {
        if self.traced(&meta) {
            self.hop(&meta, Action::Next(next));
        }
        if let Err(e) = self.frames[next as usize].try_push(Pkt { buf, meta }) {
            let mut pkt = e.element();
            self.stats.count_drop(DropReason::FrameOverflow);
            self.capture_drop(pkt.buf.data(), DropReason::FrameOverflow);
            if self.traced(&pkt.meta) {
                self.end_trace(&mut pkt.meta, Action::Dropped(DropReason::FrameOverflow));
            }
        }
    }

    /// Queues the packet for transmission on `port`. A traced probe whose next stop is a
    /// VM port is consumed there instead: probes never reach a VM.
    #[inline(always)]
    pub fn tx(&mut self, port: u16, buf: B, mut meta: Meta) {
        if self.traced(&meta) {
            // A probe ends where it would leave Aegis: a VM's port, or (going out) a
            // gateway's external port. It is consumed, never sent.
            let leaves = self.snap.overlay.local_endpoint(port).is_some()
                || (self.snap.nat.outside_port == Some(port) && meta.rx_port != port);
            if self.tracer.is_probe(&meta) && leaves {
                self.end_trace(&mut meta, Action::Delivered { port });
                bump(&self.stats.consumed, 1);
                drop(buf);
                return;
            }
            self.end_trace(&mut meta, Action::Transmitted { port });
        }
        match self.tx.get_mut(port as usize) {
            Some(f) => {
                if let Err(e) = f.try_push(buf) {
                    self.stats.count_drop(DropReason::FrameOverflow);
                    self.capture_drop(e.element().data(), DropReason::FrameOverflow);
                }
            }
            None => {
                self.stats.count_drop(DropReason::PortDown);
                self.capture_drop(buf.data(), DropReason::PortDown);
            }
        }
    }

    /// Hands the packet to worker `owner` (see [`Handoff`]), which resumes it at the running
    /// node; a full ring drops it, counted. Tracing ends here (trace slots belong to a
    /// worker).
    #[inline]
    pub fn handoff(&mut self, owner: usize, buf: B, mut meta: Meta) {
        if self.traced(&meta) {
            let worker = owner as u16;
            self.end_trace(&mut meta, Action::HandedOff { worker });
        }
        match self.handoff.rings.get(owner) {
            Some(ring) => {
                let at = self.node;
                if let Err(h) = ring.push(Handed {
                    pkt: Pkt { buf, meta },
                    at,
                }) {
                    self.stats.count_drop(DropReason::HandoffFull);
                    self.capture_drop(h.pkt.buf.data(), DropReason::HandoffFull);
                }
            }
            None => {
                self.stats.count_drop(DropReason::HandoffFull);
                self.capture_drop(buf.data(), DropReason::HandoffFull);
            }
        }
    }

    /// The worker that owns a flow with symmetric hash `hash`, if it is not this one.
    #[inline(always)]
    pub fn other_owner(&self, hash: u32) -> Option<usize> {
        self.handoff.other_owner(hash)
    }

    /// Worker `owner`, if it is not this one (and exists).
    #[inline(always)]
    pub fn other_worker(&self, owner: usize) -> Option<usize> {
        self.handoff.other(owner)
    }

    /// The number of workers flows are spread over (1: nothing is ever handed off).
    #[inline(always)]
    pub fn workers(&self) -> usize {
        self.handoff.workers()
    }

    /// Drops the packet, counting `reason`.
    #[inline(always)]
    pub fn drop(&mut self, buf: B, mut meta: Meta, reason: DropReason) {
        self.stats.count_drop(reason);
        self.capture_drop(buf.data(), reason);
        if self.traced(&meta) {
            self.end_trace(&mut meta, Action::Dropped(reason));
        }
        drop(buf);
    }

    /// Offers a packet dropped for `reason` to the drop captures (nodes that count a drop
    /// themselves, before reusing the buffer, call this; [`Outputs::drop`] does it).
    #[inline(always)]
    pub fn capture_drop(&self, data: &[u8], reason: DropReason) {
        if let Some(taps) = self.taps {
            taps.capture(Point::Drop(reason), u16::MAX, data, self.now_ns);
        }
    }

    /// A packet dropped for `reason` whose buffer becomes the ICMP error about it: offered
    /// to the drop captures and, if traced, recorded as dropped (the trace follows the
    /// error on).
    #[inline]
    pub fn dropped_for_icmp(&mut self, data: &[u8], meta: &Meta, reason: DropReason) {
        self.capture_drop(data, reason);
        if self.traced(meta) {
            self.hop(meta, Action::Dropped(reason));
        }
    }

    /// Frees a packet the dataplane consumed itself (not an error).
    #[inline]
    pub fn consume(&mut self, buf: B, mut meta: Meta) {
        bump(&self.stats.consumed, 1);
        if self.traced(&meta) {
            self.end_trace(&mut meta, Action::Consumed);
        }
        drop(buf);
    }

    /// Parks a packet until its next hop `(port, ip)` resolves; returns false if the
    /// hold queue refused it (it was dropped and counted).
    #[inline]
    pub fn hold(&mut self, buf: B, meta: Meta, port: u16, ip: u32, now_ns: u64) -> bool {
        if self.traced(&meta) {
            self.hop(&meta, Action::Held { port, ip });
        }
        match self.hold.push(Pkt { buf, meta }, port, ip, now_ns) {
            Ok(first) => first,
            Err(mut pkt) => {
                self.stats.count_drop(DropReason::NeighbourUnresolved);
                self.capture_drop(pkt.buf.data(), DropReason::NeighbourUnresolved);
                if self.traced(&pkt.meta) {
                    let action = Action::Dropped(DropReason::NeighbourUnresolved);
                    self.end_trace(&mut pkt.meta, action);
                }
                drop(pkt);
                false
            }
        }
    }

    /// Stops tracing a packet the node frees itself after a recorded drop.
    #[inline]
    pub fn forget(&mut self, meta: &mut Meta) {
        if self.traced(meta) {
            self.tracer.end(meta);
        }
    }

    /// Notes why the running node decided as it did (recorded with the packet's next hop;
    /// nothing happens for untraced packets).
    #[inline(always)]
    pub fn note(&mut self, meta: &Meta, detail: Detail) {
        if self.traced(meta) {
            self.tracer.note(meta, detail);
        }
    }

    /// The trace id a traced packet carries in the Geneve option: probes only (a watched
    /// packet is real traffic and goes on the wire unchanged).
    #[inline(always)]
    pub fn trace_id(&self, meta: &Meta) -> Option<u64> {
        if self.traced(meta) {
            self.tracer
                .id(meta)
                .filter(|&id| crate::trace::is_probe(id))
        } else {
            None
        }
    }

    /// True when some trace watch looks at the inner frames of Geneve packets (checked
    /// once per frame by `geneve-input`).
    #[inline(always)]
    pub fn watching_overlay(&self) -> bool {
        TR && self.tracer.watches().overlay_on()
    }

    /// Offers the inner frame of an untraced Geneve packet to the trace watches; a packet
    /// one takes is traced from here on (`received` from `from` with VNI `vni`).
    #[cold]
    #[inline(never)]
    pub fn watch_inner(&mut self, meta: &mut Meta, frame: &[u8], from: u32, vni: u32) {
        let port = meta.rx_port;
        let at = (self.node, Action::Received { port, from, vni });
        let revision = self.snap.overlay.revision;
        self.tracer
            .watch(meta, frame, None, at, revision, self.now_ns);
    }

    /// Starts tracing a packet under `id`, recording `action` as its first hop at the
    /// running node; false if every trace slot was in use (the packet goes on untraced).
    #[cold]
    #[inline(never)]
    pub fn begin_trace(&mut self, meta: &mut Meta, id: u64, action: Action) -> bool {
        if !self.tracer.begin(meta, id, self.now_ns) {
            return false;
        }
        self.hop(meta, action);
        true
    }

    #[cold]
    #[inline(never)]
    fn hop(&mut self, meta: &Meta, action: Action) {
        let revision = self.snap.overlay.revision;
        self.tracer
            .record(meta, self.node, action, revision, self.now_ns);
    }

    #[cold]
    #[inline(never)]
    fn end_trace(&mut self, meta: &mut Meta, action: Action) {
        self.hop(meta, action);
        self.tracer.end(meta);
    }
}

/// Offers the packets of `frame`, the input of node `id`, to the captures taking `id`
/// (each with the port it came in on); packets handed in by another worker (`handed_in`,
/// the node's (start, count), consumed here) are skipped: their first worker offered them.
#[inline(never)]
fn capture_node<B: PacketBuf>(
    taps: &Taps,
    id: NodeId,
    frame: &Frame<B>,
    handed_in: &mut (usize, usize),
    now_ns: u64,
) {
    let (skip_from, skip) = std::mem::take(handed_in);
    for (i, pkt) in frame.iter().enumerate() {
        if i.wrapping_sub(skip_from) < skip {
            continue;
        }
        taps.capture(Point::Node(id), pkt.meta.rx_port, pkt.buf.data(), now_ns);
    }
}

/// A per-table hash seed (connection tables hash flows VMs choose).
fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}

/// One worker's graph: a frame per node, transmit frames per port, the hold queue.
pub struct Graph<B> {
    frames: [Box<Frame<B>>; NodeId::COUNT],
    spare: Box<Frame<B>>,
    tx: Vec<TxFrame<B>>,
    hold: HoldQueue<B>,
    stats: Arc<WorkerStats>,
    handoff: Handoff<B>,
    taps: Taps,
    tracer: Tracer,
    /// Where the packets [`Graph::accept_handoff`] put in each node's frame sit in it
    /// (start, count) until the next run: the worker that handed them off captured them
    /// there already, so node captures skip them.
    handed_in: [(usize, usize); NodeId::COUNT],
    /// How many times over a run's measured clocks count; 0: the run reads no TSC
    /// (see [`super::stats::ClockSampling`]). 1 unless the worker samples.
    clock_weight: u64,
}

impl<B: PacketBuf> Graph<B> {
    /// A graph for `n_ports` ports, counting into `stats`. Nodes are measured with the
    /// TSC (inlined `rdtsc`).
    pub fn new(n_ports: usize, stats: Arc<WorkerStats>) -> Self {
        Graph {
            frames: std::array::from_fn(|_| Box::new(Frame::new())),
            spare: Box::new(Frame::new()),
            tx: (0..n_ports).map(|_| TxFrame::new()).collect(),
            hold: HoldQueue::new(),
            stats,
            handoff: Handoff::single(),
            taps: Taps::default(),
            tracer: Tracer::default(),
            handed_in: [(0, 0); NodeId::COUNT],
            clock_weight: 1,
        }
    }

    /// Sets how the next runs measure their nodes: `weight` 0 reads no TSC (calls and
    /// packets are still counted), `w` > 0 reads it once per node and counts the clocks
    /// `w` times over ([`super::stats::ClockSampling`]).
    pub fn set_clock_weight(&mut self, weight: u64) {
        self.clock_weight = weight;
    }

    /// The clock weight of the runs ([`Graph::set_clock_weight`]).
    pub fn clock_weight(&self) -> u64 {
        self.clock_weight
    }

    /// The worker's tracer, to start or stop a trace watch.
    pub fn tracer_mut(&mut self) -> &mut Tracer {
        &mut self.tracer
    }

    /// Makes `tracer` this worker's tracer.
    pub fn set_tracer(&mut self, tracer: Tracer) {
        self.tracer = tracer;
    }

    /// The worker's tracer.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Adds a packet built as if received on `port` (a probe) to the graph's input, traced
    /// under `id`; false if the frame or the trace slots are full (nothing was added).
    pub fn input_traced(
        &mut self,
        port: u16,
        buf: B,
        id: u64,
        snap: &Snapshot,
        now_ns: u64,
    ) -> bool {
        let f = &mut self.frames[NodeId::EthInput as usize];
        // An `untraced` build cannot follow a probe (it would reach the VM): none enters.
        if !crate::trace::ENABLED || f.is_full() {
            return false;
        }
        let mut meta = Meta::rx(port);
        if !self.tracer.begin(&mut meta, id, now_ns) {
            return false;
        }
        let revision = snap.overlay.revision;
        self.tracer.record(
            &meta,
            NodeId::EthInput,
            Action::Injected { port },
            revision,
            now_ns,
        );
        f.push(Pkt { buf, meta });
        true
    }

    /// The worker's packet captures.
    pub fn taps(&self) -> &Taps {
        &self.taps
    }

    /// The worker's packet captures, to start or stop one.
    pub fn taps_mut(&mut self) -> &mut Taps {
        &mut self.taps
    }

    /// Makes this graph worker `me` of the workers sharing `rings` (see [`Handoff`]).
    pub fn set_handoff(&mut self, me: usize, rings: Arc<[ArrayQueue<Handed<B>>]>) {
        self.handoff = Handoff { me, rings };
    }

    /// Moves packets other workers handed to this one into the graph, each at the node that
    /// handed it off (at most [`super::FRAME_CAP`] per call: the rest wait for the next);
    /// returns how many.
    pub fn accept_handoff(&mut self) -> usize {
        let Some(ring) = self.handoff.rings.get(self.handoff.me) else {
            return 0;
        };
        let mut n = 0;
        while n < super::FRAME_CAP {
            let Some(Handed { pkt, at }) = ring.pop() else {
                break;
            };
            n += 1;
            let frame = &mut self.frames[at as usize];
            let start = frame.len();
            if frame.try_push(pkt).is_err() {
                // Only if the frame was not empty before (the worker accepts between runs).
                self.stats.count_drop(DropReason::FrameOverflow);
                continue;
            }
            let h = &mut self.handed_in[at as usize];
            if h.1 == 0 {
                h.0 = start;
            }
            h.1 += 1;
        }
        n
    }

    /// Adds received packets to the graph's input (at most [`super::FRAME_CAP`] per run;
    /// the rest is dropped and counted).
    #[inline]
    pub fn input(&mut self, port: u16, bufs: impl IntoIterator<Item = B>) {
        let f = &mut self.frames[NodeId::EthInput as usize];
        for buf in bufs {
            if f.try_push(Pkt {
                buf,
                meta: Meta::rx(port),
            })
            .is_err()
            {
                self.stats.count_drop(DropReason::FrameOverflow);
            }
        }
    }

    /// [`Graph::input`] for a port some trace watch looks at: each packet is offered to the
    /// watches first, and the ones a watch takes are traced from `ethernet-input` on.
    pub fn input_watched(
        &mut self,
        port: u16,
        bufs: impl IntoIterator<Item = B>,
        snap: &Snapshot,
        now_ns: u64,
    ) {
        let f = &mut self.frames[NodeId::EthInput as usize];
        let revision = snap.overlay.revision;
        for buf in bufs {
            if f.is_full() {
                self.stats.count_drop(DropReason::FrameOverflow);
                continue;
            }
            let mut meta = Meta::rx(port);
            let at = (NodeId::EthInput, Action::Watched { port });
            self.tracer
                .watch(&mut meta, buf.data(), Some(port), at, revision, now_ns);
            f.push(Pkt { buf, meta });
        }
    }

    /// Injects a packet built outside the graph (e.g. an ARP request from the control
    /// thread) straight into a port's transmit frame.
    pub fn inject_tx(&mut self, port: u16, buf: B) {
        let stats = &self.stats;
        match self.tx.get_mut(port as usize) {
            Some(f) => {
                if f.try_push(buf).is_err() {
                    stats.count_drop(DropReason::FrameOverflow);
                }
            }
            None => stats.count_drop(DropReason::PortDown),
        }
    }

    /// Runs every node with pending packets until the graph is empty. A node's input frame
    /// is first offered to the captures taking that node.
    pub fn run(&mut self, snap: &Snapshot, now_ns: u64, env: &mut GraphEnv) {
        let stats = &*self.stats;
        let taps = self.taps.drops_on().then_some(&self.taps);
        let node_taps = self.taps.nodes();
        // One TSC read per node when this run is measured: each node's clocks run from the
        // previous read to its end.
        let mut lap = Lap::start(self.clock_weight);
        for _ in 0..MAX_PASSES {
            let mut ran = false;
            for id in NodeId::ALL {
                if self.frames[id as usize].is_empty() {
                    continue;
                }
                ran = true;
                std::mem::swap(&mut self.frames[id as usize], &mut self.spare);
                if node_taps & node_bit(id) != 0 {
                    let handed_in = &mut self.handed_in[id as usize];
                    capture_node(&self.taps, id, &self.spare, handed_in, now_ns);
                }
                let n = self.spare.len() as u64;
                let mut ctx = NodeCtx {
                    snap,
                    now_ns,
                    env: &mut *env,
                };
                // The traced variant of a node only when a packet on this worker is traced
                // or the node may start a trace; otherwise the untraced one, whose code has
                // no trace hook at all (as in a build without probes).
                let traced = crate::trace::ENABLED
                    && (self.tracer.in_flight() != 0
                        || (id == NodeId::GeneveInput
                            && (self.tracer.watches().overlay_on()
                                || nodes::overlay::geneve_input::may_start_traces(&self.spare))));
                if traced {
                    let mut out = Outputs::<B, true> {
                        frames: &mut self.frames,
                        tx: &mut self.tx,
                        hold: &mut self.hold,
                        stats,
                        handoff: &self.handoff,
                        taps,
                        node_taps,
                        now_ns,
                        tracer: &mut self.tracer,
                        node: id,
                        snap,
                    };
                    nodes::process(id, &mut ctx, &mut self.spare, &mut out);
                } else {
                    let mut out = Outputs::<B, false> {
                        frames: &mut self.frames,
                        tx: &mut self.tx,
                        hold: &mut self.hold,
                        stats,
                        handoff: &self.handoff,
                        taps,
                        node_taps,
                        now_ns,
                        tracer: &mut self.tracer,
                        node: id,
                        snap,
                    };
                    nodes::process(id, &mut ctx, &mut self.spare, &mut out);
                }
                // A node must hand on every packet; anything left is a bug, counted.
                for _ in self.spare.drain(..) {
                    stats.count_drop(DropReason::FrameOverflow);
                }
                lap = lap.record(stats, id as usize, n);
            }
            if !ran {
                break;
            }
        }
        self.handed_in = [(0, 0); NodeId::COUNT];
        self.tracer.reap(now_ns);
    }

    /// Releases held packets whose next hop resolved in `snap` back into `ip4-lookup` (the
    /// route is looked up again: the snapshot may have changed since they were parked), and
    /// drops the ones that waited too long. Cheap when nothing is held.
    pub fn release_held(&mut self, snap: &Snapshot, now_ns: u64) {
        let stats = &self.stats;
        let taps = &self.taps;
        if self.hold.is_empty() {
            return;
        }
        let frame = &mut self.frames[NodeId::Ip4Lookup as usize];
        let tracer = &mut self.tracer;
        let revision = snap.overlay.revision;
        self.hold.release(
            now_ns,
            |port, ip| snap.neighbour(port, ip).is_some(),
            |pkt| {
                if frame.try_push(pkt).is_err() {
                    stats.count_drop(DropReason::FrameOverflow);
                }
            },
            |mut pkt| {
                stats.count_drop(DropReason::NeighbourUnresolved);
                if taps.drops_on() {
                    let reason = Point::Drop(DropReason::NeighbourUnresolved);
                    taps.capture(reason, u16::MAX, pkt.buf.data(), now_ns);
                }
                if pkt.meta.traced() {
                    let action = Action::Dropped(DropReason::NeighbourUnresolved);
                    tracer.record(&pkt.meta, NodeId::Ip4Lookup, action, revision, now_ns);
                    tracer.end(&mut pkt.meta);
                }
            },
        );
    }

    /// Packets waiting in the hold queue.
    pub fn held(&self) -> usize {
        self.hold.len()
    }

    /// True while packets wait in the hold queue.
    pub fn has_held(&self) -> bool {
        !self.hold.is_empty()
    }

    /// The transmit frames, one per port, for the worker to flush.
    pub fn tx_frames(&mut self) -> &mut [TxFrame<B>] {
        &mut self.tx
    }

    /// The transmit frames with the captures (the worker captures tx as it flushes).
    pub fn tx_frames_and_taps(&mut self) -> (&mut [TxFrame<B>], &Taps) {
        (&mut self.tx, &self.taps)
    }
}
