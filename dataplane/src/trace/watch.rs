//! Continuous, filtered tracing of real traffic (`aegisctl trace watch`): which packets a
//! worker starts tracing on its own, and the control side that starts and stops watches.
//!
//! A watch is a tcpdump filter (classic BPF, as for captures), the ports whose received
//! packets it looks at, and a rate. A worker runs the filter on every packet received on a
//! watched port (checked once per burst: nothing per packet when no watch runs) and on the
//! inner frame of every Geneve packet it decapsulates (checked once per frame), so a watch
//! sees a VM's traffic whether it arrives from the VM or from another host. A packet that
//! matches starts a trace under a watch id ([`WATCH_BIT`]); from then on it is traced like
//! a probe, hop by hop, but delivered normally: a watched packet is real traffic. The
//! records go to the control thread's [`super::TraceStore`], which keeps the last paths of
//! each watch in a ring (the oldest unread path goes first) for the stream to the client.
//!
//! Bounds: each worker traces at most `rate` packets per second per watch (a token
//! bucket; the rest are counted `rate_limited`), a watch may use at most [`WATCH_SLOTS`] of
//! the worker's trace slots so probes always find one (counted `no_slot`), and at most
//! [`MAX_WATCHES`] watches run at once. Watched packets carry no Geneve trace option: the
//! packet on the wire is exactly what it would be without the watch (only probes are traced
//! across hosts).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use arrayvec::ArrayVec;
use crossbeam_queue::ArrayQueue;

use super::tracer::SLOTS;
use crate::capture::Program;
use crate::graph::TokenBucket;

/// Trace ids of watched packets have this bit set (and never [`super::PROBE_BIT`]).
pub const WATCH_BIT: u64 = 1 << 62;
/// Watches running at once on a dataplane.
pub const MAX_WATCHES: usize = 4;
/// Trace slots a worker keeps for probes: watches use at most the others.
pub const PROBE_RESERVE: usize = 16;
/// Trace slots watched packets may use on one worker.
pub const WATCH_SLOTS: usize = SLOTS - PROBE_RESERVE;
/// Packets traced per second per worker and watch when the request does not say.
pub const DEFAULT_RATE: u32 = 100;
/// The highest rate a watch may ask for (per worker).
pub const MAX_RATE: u32 = 100_000;
/// Ports a watch can select (the mask is 64 bits).
pub const MAX_PORTS: usize = 64;

const WATCH_SHIFT: u32 = 48;
const WORKER_SHIFT: u32 = 40;
const SEQ_MASK: u64 = (1 << WORKER_SHIFT) - 1;

/// The watch number of a watched packet's trace id (`None` for other traces).
pub fn watch_of(trace: u64) -> Option<u8> {
    (trace & WATCH_BIT != 0 && !super::is_probe(trace)).then_some((trace >> WATCH_SHIFT) as u8)
}

/// The trace id of the `seq`th packet worker `worker` traced for watch `watch`.
pub fn watch_trace_id(watch: u8, worker: u16, seq: u64) -> u64 {
    WATCH_BIT
        | u64::from(watch) << WATCH_SHIFT
        | u64::from(worker as u8) << WORKER_SHIFT
        | (seq & SEQ_MASK)
}

/// What one watch takes.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// Ports whose received packets are matched (bit = port index).
    pub rx_ports: u64,
    /// Match the inner frames of Geneve packets this host decapsulates too.
    pub overlay: bool,
    /// The filter (accept-all for no filter).
    pub filter: Program,
    /// Packets traced per second on each worker.
    pub rate: u32,
}

/// A watch's counters, summed over the workers.
#[derive(Debug, Default)]
pub struct WatchCounters {
    /// Packets the filter accepted.
    pub matched: AtomicU64,
    /// Packets traced.
    pub traced: AtomicU64,
    /// Matching packets not traced: over the rate.
    pub rate_limited: AtomicU64,
    /// Matching packets not traced: the worker's watch slots were all in use.
    pub no_slot: AtomicU64,
}

/// A change to a worker's watches.
pub enum WatchCommand {
    /// Start watch `watch`.
    Start {
        /// Its number (in the trace ids).
        watch: u8,
        /// What it takes.
        spec: Arc<WatchSpec>,
        /// Where the worker counts.
        counters: Arc<WatchCounters>,
    },
    /// Stop watch `watch`.
    Stop {
        /// Its number.
        watch: u8,
    },
}

struct Active {
    watch: u8,
    spec: Arc<WatchSpec>,
    counters: Arc<WatchCounters>,
    bucket: TokenBucket,
    seq: u64,
}

/// The watches one worker runs, with the union of the ports they look at.
#[derive(Default)]
pub struct Watches {
    active: ArrayVec<Active, MAX_WATCHES>,
    rx: u64,
    overlay: bool,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("running", &self.active.len())
            .field("rx_ports", &format_args!("{:#x}", self.rx))
            .field("overlay", &self.overlay)
            .finish()
    }
}

impl Watches {
    /// Applies a command (the worker calls this between bursts).
    pub fn apply(&mut self, cmd: WatchCommand) {
        match cmd {
            WatchCommand::Start {
                watch,
                spec,
                counters,
            } => {
                let rate = u64::from(spec.rate.max(1));
                let _ = self.active.try_push(Active {
                    watch,
                    bucket: TokenBucket::new(rate, rate.div_ceil(10).max(1)),
                    spec,
                    counters,
                    seq: 0,
                });
            }
            WatchCommand::Stop { watch } => self.active.retain(|a| a.watch != watch),
        }
        self.rx = self.active.iter().fold(0, |m, a| m | a.spec.rx_ports);
        self.overlay = self.active.iter().any(|a| a.spec.overlay);
    }

    /// True when some watch looks at packets received on `port`.
    #[inline(always)]
    pub fn rx_on(&self, port: u16) -> bool {
        super::ENABLED && usize::from(port) < MAX_PORTS && (self.rx >> port) & 1 != 0
    }

    /// True when some watch looks at the inner frames of Geneve packets.
    #[inline(always)]
    pub fn overlay_on(&self) -> bool {
        super::ENABLED && self.overlay
    }

    /// True when no watch runs.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Offers a packet (`frame` from its Ethernet header) received on `port` (`None`: the
    /// inner frame of a Geneve packet) to the watches; returns the trace id to trace it
    /// under if one takes it. `slots_free` says whether a watch slot is free on this worker.
    #[inline]
    pub fn select(
        &mut self,
        port: Option<u16>,
        frame: &[u8],
        worker: u16,
        slots_free: bool,
        now_ns: u64,
    ) -> Option<u64> {
        let bit = port.map(|p| 1u64.checked_shl(u32::from(p)).unwrap_or(0));
        for a in &mut self.active {
            let wanted = match bit {
                Some(b) => a.spec.rx_ports & b != 0,
                None => a.spec.overlay,
            };
            if !wanted || a.spec.filter.run(frame, frame.len() as u32) == 0 {
                continue;
            }
            a.counters.matched.fetch_add(1, Relaxed);
            if !slots_free {
                a.counters.no_slot.fetch_add(1, Relaxed);
                return None;
            }
            if !a.bucket.take(now_ns) {
                a.counters.rate_limited.fetch_add(1, Relaxed);
                return None;
            }
            a.counters.traced.fetch_add(1, Relaxed);
            let id = watch_trace_id(a.watch, worker, a.seq);
            a.seq += 1;
            return Some(id);
        }
        None
    }
}

/// Why a watch could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// [`MAX_WATCHES`] watches run already.
    #[error("{MAX_WATCHES} trace watches are running already; stop one first")]
    TooMany,
    /// A worker's queue is full (it is not serving it).
    #[error("worker {0} does not take watch commands (is it running?)")]
    Busy(usize),
    /// The dataplane is shutting down.
    #[error("the dataplane is shutting down")]
    Closed,
}

/// Capacity of each worker's watch command queue: a start and a stop per watch.
pub const WATCH_QUEUE: usize = 2 * MAX_WATCHES;

/// Starts and stops watches on a dataplane's workers.
pub struct WatchHub {
    queues: Vec<Arc<ArrayQueue<WatchCommand>>>,
    numbers: Mutex<[bool; MAX_WATCHES]>,
    running: AtomicUsize,
    closed: AtomicBool,
    /// Packets traced by watches that ended (for the metrics).
    traced_ended: AtomicU64,
    live: Mutex<Vec<Arc<WatchCounters>>>,
}

/// One running watch, seen from the control side; dropping it stops the watch.
pub struct WatchSession {
    hub: Arc<WatchHub>,
    watch: u8,
    counters: Arc<WatchCounters>,
}

impl WatchHub {
    /// A hub over the workers' command queues.
    pub fn new(queues: Vec<Arc<ArrayQueue<WatchCommand>>>) -> Arc<WatchHub> {
        Arc::new(WatchHub {
            queues,
            numbers: Mutex::new([false; MAX_WATCHES]),
            running: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            traced_ended: AtomicU64::new(0),
            live: Mutex::new(Vec::new()),
        })
    }

    /// A fresh command queue for one worker.
    pub fn queue() -> Arc<ArrayQueue<WatchCommand>> {
        Arc::new(ArrayQueue::new(WATCH_QUEUE))
    }

    /// Starts `spec` on every worker.
    pub fn start(self: &Arc<Self>, spec: WatchSpec) -> Result<WatchSession, WatchError> {
        if self.is_closed() {
            return Err(WatchError::Closed);
        }
        let watch = {
            let mut used = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(i) = used.iter().position(|u| !u) else {
                return Err(WatchError::TooMany);
            };
            used[i] = true;
            i as u8 + 1
        };
        self.running.fetch_add(1, Relaxed);
        let counters = Arc::new(WatchCounters::default());
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counters.clone());
        let session = WatchSession {
            hub: self.clone(),
            watch,
            counters: counters.clone(),
        };
        let spec = Arc::new(spec);
        for (w, q) in self.queues.iter().enumerate() {
            let cmd = WatchCommand::Start {
                watch,
                spec: spec.clone(),
                counters: counters.clone(),
            };
            if q.push(cmd).is_err() {
                // Dropping the session stops the workers that did start.
                return Err(WatchError::Busy(w));
            }
        }
        Ok(session)
    }

    /// Ends every watch: sessions report [`WatchSession::closed`] from now on.
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// True once [`WatchHub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Watches running.
    pub fn running(&self) -> usize {
        self.running.load(Relaxed)
    }

    /// Packets traced by every watch since start.
    pub fn traced_total(&self) -> u64 {
        let live: u64 = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|c| c.traced.load(Relaxed))
            .sum();
        self.traced_ended.load(Relaxed) + live
    }
}

impl WatchSession {
    /// The watch's number (bits 48–55 of its trace ids).
    pub fn watch(&self) -> u8 {
        self.watch
    }

    /// Its counters.
    pub fn counters(&self) -> &WatchCounters {
        &self.counters
    }

    /// True when the dataplane is shutting down: the reader should end the session.
    pub fn closed(&self) -> bool {
        self.hub.is_closed()
    }
}

impl Drop for WatchSession {
    fn drop(&mut self) {
        for q in &self.hub.queues {
            let _ = q.push(WatchCommand::Stop { watch: self.watch });
        }
        self.hub
            .traced_ended
            .fetch_add(self.counters.traced.load(Relaxed), Relaxed);
        self.hub
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|c| !Arc::ptr_eq(c, &self.counters));
        let mut used = self
            .hub
            .numbers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(u) = used.get_mut(usize::from(self.watch) - 1) {
            *u = false;
        }
        self.hub.running.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Insn;

    fn spec(rx: u64, overlay: bool, filter: Program, rate: u32) -> WatchSpec {
        WatchSpec {
            rx_ports: rx,
            overlay,
            filter,
            rate,
        }
    }

    fn start(w: &mut Watches, watch: u8, s: WatchSpec) -> Arc<WatchCounters> {
        let counters = Arc::new(WatchCounters::default());
        w.apply(WatchCommand::Start {
            watch,
            spec: Arc::new(s),
            counters: counters.clone(),
        });
        counters
    }

    #[test]
    fn ids_carry_watch_worker_and_sequence() {
        let id = watch_trace_id(3, 1, 7);
        assert_eq!(watch_of(id), Some(3));
        assert!(!super::super::is_probe(id));
        assert_eq!(id & SEQ_MASK, 7);
        assert_eq!(watch_of(42 | super::super::PROBE_BIT), None);
        assert_eq!(watch_of(42), None);
    }

    #[test]
    fn ports_filters_rates_and_slots_decide() {
        let mut w = Watches::default();
        assert!(w.is_empty() && !w.rx_on(0) && !w.overlay_on());
        // Accepts frames longer than 10 bytes (ld len; jgt #10).
        let long_only = Program::new(vec![
            Insn::new(0x80, 0, 0, 0),
            Insn::new(0x25, 0, 1, 10),
            Insn::new(0x06, 0, 0, 0xffff),
            Insn::new(0x06, 0, 0, 0),
        ])
        .unwrap();
        let c = start(&mut w, 1, spec(0b10, true, long_only, 20));
        assert!(w.rx_on(1) && !w.rx_on(0) && !w.rx_on(200) && w.overlay_on());
        let pkt = [0u8; 60];
        assert_eq!(
            w.select(Some(0), &pkt, 0, true, 0),
            None,
            "port not watched"
        );
        assert_eq!(w.select(Some(1), &pkt[..5], 0, true, 0), None, "filter");
        let a = w.select(Some(1), &pkt, 2, true, 0).unwrap();
        let b = w.select(None, &pkt, 2, true, 0).unwrap();
        assert_eq!((watch_of(a), a & SEQ_MASK, b & SEQ_MASK), (Some(1), 0, 1));
        assert_eq!(w.select(Some(1), &pkt, 2, false, 0), None, "no slot");
        // The burst is rate / 10 = 2: both tokens are spent; they come back within 100 ms.
        assert_eq!(w.select(Some(1), &pkt, 2, true, 1), None, "over the rate");
        assert!(w.select(Some(1), &pkt, 2, true, 100_000_001).is_some());
        assert_eq!(c.matched.load(Relaxed), 5);
        assert_eq!(c.traced.load(Relaxed), 3);
        assert_eq!(c.no_slot.load(Relaxed), 1);
        assert_eq!(c.rate_limited.load(Relaxed), 1);
        w.apply(WatchCommand::Stop { watch: 1 });
        assert!(w.is_empty() && !w.rx_on(1) && !w.overlay_on());
    }

    #[test]
    fn the_hub_numbers_watches_and_stops_them_on_drop() {
        let queues: Vec<_> = (0..2).map(|_| WatchHub::queue()).collect();
        let hub = WatchHub::new(queues.clone());
        let all = || spec(u64::MAX, true, Program::accept_all(), 5);
        let sessions: Vec<_> = (0..MAX_WATCHES)
            .map(|_| hub.start(all()).unwrap())
            .collect();
        assert_eq!(hub.start(all()).err(), Some(WatchError::TooMany));
        assert_eq!(hub.running(), MAX_WATCHES);
        let numbers: Vec<u8> = sessions.iter().map(|s| s.watch()).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4]);
        let mut w = Watches::default();
        while let Some(cmd) = queues[1].pop() {
            w.apply(cmd);
        }
        assert!(w.rx_on(5));
        drop(sessions);
        while let Some(cmd) = queues[1].pop() {
            w.apply(cmd);
        }
        assert!(w.is_empty());
        while queues[0].pop().is_some() {}
        assert_eq!(hub.running(), 0);
        assert_eq!(hub.start(all()).unwrap().watch(), 1);
        hub.close();
        assert_eq!(hub.start(all()).err(), Some(WatchError::Closed));
    }
}
