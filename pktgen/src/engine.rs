//! The DPDK side of `aegis-pktgen run`: starts the EAL, opens and starts the ports, waits for
//! their links, and runs the transmit and receive loops on worker lcores while the main lcore
//! prints progress once a second and times the run.
//!
//! Placement: tx core `i` is the `i`-th worker lcore and sends stream `i` on tx queue `i`.
//! The receive loop (one rx queue, so one tracker sees every stream in arrival order) gets
//! its own worker lcore when there is one left over, and otherwise shares the first tx
//! core's loop. On a 2-CPU machine the default `-l 0,1` gives one worker that both sends and
//! receives, keeping the other CPU for the peer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_dataplane::buf::mbuf::Mbuf;
use aegis_dataplane::buf::{BulkFree, PacketBuf};
use aegis_dataplane::port::clock::{cycles_to_ns, rdtsc};
use aegis_dataplane::port::mempool::DEFAULT_DATA_ROOM;
use aegis_dataplane::port::{
    Eal, EalError, Mempool, MempoolError, Port, PortConfig, PortError, RxQueue, TxQueue,
};
use arrayvec::ArrayVec;

use crate::pacing::Pacer;
use crate::profile::{RunSpec, MAX_BURST};
use crate::report::progress_line;
use crate::stamp::{read_stamp, Stamp};
use crate::template::FrameTable;
use crate::tracker::Tracker;
use crate::values::Rate;

/// How far (in time) a tx core may fall behind its schedule and still catch up.
const MAX_LAG: Duration = Duration::from_millis(50);
/// Receive burst size.
const RX_BURST: usize = 64;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The EAL failed.
    #[error("{0}")]
    Eal(#[from] EalError),
    /// The mempool could not be made.
    #[error("{0}")]
    Mempool(#[from] MempoolError),
    /// A port step failed.
    #[error("{0}")]
    Port(#[from] PortError),
    /// Not enough lcores for the asked tx cores.
    #[error("{tx_cores} tx core(s) need as many worker lcores, but the EAL has {workers} (workers: {list:?}); give more with the EAL's -l, e.g. -l 0-{tx_cores}")]
    Lcores {
        /// Asked.
        tx_cores: u16,
        /// Available.
        workers: usize,
        /// Their ids.
        list: Vec<u32>,
    },
    /// A link stayed down.
    #[error("port {port:?}: link still down after {secs:.1} s (for memif: is the peer running and using the same socket, with the other role?)")]
    LinkDown {
        /// Port name.
        port: String,
        /// Seconds waited.
        secs: f64,
    },
    /// A loop ended without reporting (it panicked or the channel broke).
    #[error("a tx/rx loop ended without its result")]
    Lost,
}

/// What a tx core did.
#[derive(Debug, Clone, Copy, Default)]
pub struct TxResult {
    /// Its stream id.
    pub stream: u16,
    /// Packets the driver accepted.
    pub packets: u64,
    /// Their bytes (FCS excluded).
    pub bytes: u64,
    /// Packets given up because the core was more than the allowed lag behind schedule.
    pub late: u64,
    /// Bursts where the mempool was empty.
    pub alloc_failures: u64,
    /// TSC of the scheduled start.
    pub start_tsc: u64,
    /// TSC when it stopped sending.
    pub end_tsc: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Per tx core.
    pub tx: Vec<TxResult>,
    /// The receiver's bookkeeping.
    pub rx: Tracker,
    /// TSC frequency.
    pub tsc_hz: u64,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
}

/// Counters the loops publish for the progress line.
#[derive(Debug, Default)]
struct Live {
    tx_packets: Vec<AtomicU64>,
    rx_unique: AtomicU64,
    gap_cycles: AtomicU64,
    stop_tx: AtomicBool,
    stop_rx: AtomicBool,
    tx_done: AtomicUsize,
}

enum Done {
    Tx(TxResult),
    Rx(Box<Tracker>),
}

enum Pace {
    Line,
    Packets(Pacer),
    Bits(Pacer),
}

struct TxTask {
    q: TxQueue,
    pool: Mempool,
    table: Arc<FrameTable>,
    cursor: usize,
    stream: u16,
    seq: u64,
    burst: usize,
    pace: Pace,
    pending: ArrayVec<Mbuf, MAX_BURST>,
    /// Bytes of every packet built (sent or still pending).
    built_bytes: u64,
    sent: u64,
    alloc_failures: u64,
    start_tsc: u64,
}

impl TxTask {
    #[inline]
    fn step(&mut self, live: &Live) {
        let now = rdtsc();
        if now < self.start_tsc {
            return;
        }
        if !self.pending.is_empty() {
            self.send(live);
            if !self.pending.is_empty() {
                // The port is full: let the pacer count what falls too far behind.
                match &mut self.pace {
                    Pace::Line => {}
                    Pace::Packets(p) | Pace::Bits(p) => {
                        p.available(now);
                    }
                }
                return;
            }
        }
        let frames = self.table.frames();
        let (n, units) = match &mut self.pace {
            Pace::Line => (self.burst, 0),
            Pace::Packets(p) => {
                let n = (p.available(now) as usize).min(self.burst);
                (n, n as u64)
            }
            Pace::Bits(p) => {
                let avail = p.available(now);
                let (mut n, mut bits, mut c) = (0, 0u64, self.cursor);
                while n < self.burst {
                    let b = frames[c].wire_bits();
                    if bits + b > avail {
                        break;
                    }
                    bits += b;
                    n += 1;
                    c = (c + 1) % frames.len();
                }
                (n, bits)
            }
        };
        if n == 0 {
            return;
        }
        if !self.pool.alloc_bulk(&mut self.pending, n) {
            self.alloc_failures += 1;
            return;
        }
        let tsc = rdtsc();
        for m in self.pending.iter_mut() {
            let f = &frames[self.cursor];
            self.cursor += 1;
            if self.cursor == frames.len() {
                self.cursor = 0;
            }
            if m.extend_from_slice(f.bytes()) {
                let stamp = Stamp {
                    stream: self.stream,
                    seq: self.seq,
                    tsc,
                };
                f.stamp_into(m.data_mut(), &stamp);
                self.seq += 1;
                self.built_bytes += f.len() as u64;
            }
        }
        match &mut self.pace {
            Pace::Line => {}
            Pace::Packets(p) | Pace::Bits(p) => p.spend(units),
        }
        self.send(live);
    }

    #[inline]
    fn send(&mut self, live: &Live) {
        let sent = self.q.tx_burst(&mut self.pending);
        if sent > 0 {
            self.sent += sent as u64;
            live.tx_packets[usize::from(self.stream)].store(self.sent, Ordering::Relaxed);
        }
    }

    fn finish(mut self) -> TxResult {
        let end_tsc = rdtsc();
        let unsent: u64 = self.pending.iter().map(|m| m.len() as u64).sum();
        Mbuf::free_bulk(self.pending.drain(..));
        let late = match &self.pace {
            Pace::Line => 0,
            Pace::Packets(p) => p.late(),
            Pace::Bits(p) => (p.late() as f64 / self.table.mean_wire_bits()) as u64,
        };
        TxResult {
            stream: self.stream,
            packets: self.sent,
            bytes: self.built_bytes - unsent,
            late,
            alloc_failures: self.alloc_failures,
            start_tsc: self.start_tsc,
            end_tsc,
        }
    }
}

struct RxTask {
    q: RxQueue,
    tracker: Box<Tracker>,
    buf: ArrayVec<Mbuf, RX_BURST>,
}

impl RxTask {
    #[inline]
    fn step(&mut self, live: &Live) {
        if self.q.rx_burst(&mut self.buf, RX_BURST) == 0 {
            return;
        }
        let now = rdtsc();
        for m in self.buf.iter() {
            let data = m.data();
            match read_stamp(data) {
                Some(s) => self.tracker.record(s.stream, s.seq, s.tsc, now, data.len()),
                None => self.tracker.record_foreign(),
            }
        }
        Mbuf::free_bulk(self.buf.drain(..));
        live.rx_unique
            .store(self.tracker.unique(), Ordering::Relaxed);
        if let Some(g) = self.tracker.longest_gap() {
            live.gap_cycles.store(g.cycles, Ordering::Relaxed);
        }
    }
}

/// One lcore's work: a tx stream, the receiver, or both.
fn run_lcore(
    mut tx: Option<TxTask>,
    mut rx: Option<RxTask>,
    live: Arc<Live>,
    done: mpsc::Sender<Done>,
) {
    loop {
        if let Some(t) = tx.as_mut() {
            if live.stop_tx.load(Ordering::Relaxed) {
                if let Some(t) = tx.take() {
                    let _ = done.send(Done::Tx(t.finish()));
                    live.tx_done.fetch_add(1, Ordering::AcqRel);
                }
            } else {
                t.step(&live);
            }
        }
        match rx.as_mut() {
            Some(r) => {
                r.step(&live);
                if live.stop_rx.load(Ordering::Relaxed) && tx.is_none() {
                    if let Some(r) = rx.take() {
                        let _ = done.send(Done::Rx(r.tracker));
                    }
                    return;
                }
            }
            None if tx.is_none() => return,
            None => {}
        }
    }
}

/// Runs `spec` with frames from `table`. `interrupt` ends the transmission early (set it
/// from a signal handler); `progress` prints a line a second on stderr.
pub fn run(
    spec: &RunSpec,
    table: Arc<FrameTable>,
    interrupt: &AtomicBool,
    progress: bool,
) -> Result<Outcome, EngineError> {
    let eal = Eal::init(&spec.eal)?;
    let hz = eal.tsc_hz();
    let workers = eal.worker_lcores().to_vec();
    let tx_cores = usize::from(spec.tx_cores);
    if workers.len() < tx_cores {
        return Err(EngineError::Lcores {
            tx_cores: spec.tx_cores,
            workers: workers.len(),
            list: workers,
        });
    }
    let mbufs = (8192 + 2048 * tx_cores as u32).next_power_of_two() - 1;
    let pool = Mempool::new(&eal, "pktgen", mbufs, 256, DEFAULT_DATA_ROOM, None)?;

    let same = spec.rx_port == spec.tx_port;
    let mut tx_port = Port::probe(&eal, &spec.tx_port)?;
    tx_port.configure(
        &PortConfig {
            rx_queues: 1,
            tx_queues: spec.tx_cores,
            ..PortConfig::default()
        },
        &pool,
    )?;
    let mut rx_port = if same {
        None
    } else {
        let mut p = Port::probe(&eal, &spec.rx_port)?;
        p.configure(&PortConfig::default(), &pool)?;
        Some(p)
    };
    for p in std::iter::once(&mut tx_port).chain(rx_port.as_mut()) {
        // Not every driver can (or needs to): net_null and net_pcap always are.
        let _ = p.promiscuous(true);
        p.start()?;
    }
    for p in std::iter::once(&tx_port).chain(rx_port.as_ref()) {
        wait_link(p, spec.link_timeout, interrupt)?;
    }

    let live = Arc::new(Live {
        tx_packets: (0..tx_cores).map(|_| AtomicU64::new(0)).collect(),
        ..Live::default()
    });
    let (done_tx, done_rx) = mpsc::channel();
    let start_tsc = rdtsc() + hz / 100;
    let table_len = table.frames().len();
    let mut tasks: Vec<(u32, Option<TxTask>, Option<RxTask>)> = Vec::new();
    for (i, &lcore) in workers.iter().enumerate().take(tx_cores) {
        let q = tx_port.tx_queue(i as u16).ok_or(EngineError::Lost)?;
        let pace = pace_for(spec, &table, hz, start_tsc);
        tasks.push((
            lcore,
            Some(TxTask {
                q,
                pool: pool.clone(),
                table: table.clone(),
                cursor: i * table_len / tx_cores,
                stream: i as u16,
                seq: 0,
                burst: spec.burst,
                pace,
                pending: ArrayVec::new(),
                built_bytes: 0,
                sent: 0,
                alloc_failures: 0,
                start_tsc,
            }),
            None,
        ));
    }
    let rxq = rx_port
        .as_ref()
        .unwrap_or(&tx_port)
        .rx_queue(0)
        .ok_or(EngineError::Lost)?;
    let rx_task = RxTask {
        q: rxq,
        tracker: Box::new(Tracker::new(hz)),
        buf: ArrayVec::new(),
    };
    if workers.len() > tx_cores {
        tasks.push((workers[tx_cores], None, Some(rx_task)));
    } else {
        tasks[0].2 = Some(rx_task);
    }
    for (lcore, tx, rx) in tasks {
        let (live, done) = (live.clone(), done_tx.clone());
        eal.launch(lcore, move || run_lcore(tx, rx, live, done))?;
    }
    drop(done_tx);

    let outcome = supervise(spec, &live, interrupt, progress, hz);
    eal.wait_all()?;
    let mut tx = Vec::new();
    let mut rx = None;
    for d in done_rx.try_iter() {
        match d {
            Done::Tx(t) => tx.push(t),
            Done::Rx(t) => rx = Some(*t),
        }
    }
    tx.sort_by_key(|t| t.stream);
    let rx = rx.ok_or(EngineError::Lost)?;
    if tx.len() != tx_cores {
        return Err(EngineError::Lost);
    }
    drop(rx_port);
    drop(tx_port);
    Ok(Outcome {
        tx,
        rx,
        tsc_hz: hz,
        interrupted: outcome,
    })
}

fn pace_for(spec: &RunSpec, table: &FrameTable, hz: u64, start: u64) -> Pace {
    let cores = f64::from(spec.tx_cores);
    let lag = MAX_LAG.as_secs_f64();
    match spec.rate {
        Rate::Line => Pace::Line,
        Rate::Pps(pps) => {
            let per = pps / cores;
            let backlog = ((per * lag) as u64).max(2 * spec.burst as u64);
            Pace::Packets(Pacer::new(hz, per, start, backlog))
        }
        Rate::Bps(bps) => {
            let per = bps / cores;
            let min = 2.0 * spec.burst as f64 * table.mean_wire_bits();
            let backlog = (per * lag).max(min) as u64;
            Pace::Bits(Pacer::new(hz, per, start, backlog))
        }
    }
}

fn wait_link(p: &Port, timeout: Duration, interrupt: &AtomicBool) -> Result<(), EngineError> {
    let t0 = Instant::now();
    loop {
        if p.link().map(|l| l.up).unwrap_or(true) {
            return Ok(());
        }
        if t0.elapsed() >= timeout || interrupt.load(Ordering::Relaxed) {
            return Err(EngineError::LinkDown {
                port: p.name().to_owned(),
                secs: t0.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Times the run on the main lcore, prints progress, then stops tx, drains and stops rx.
/// Returns whether it was interrupted.
fn supervise(spec: &RunSpec, live: &Live, interrupt: &AtomicBool, progress: bool, hz: u64) -> bool {
    let t0 = Instant::now() + Duration::from_millis(10);
    let mut next = t0 + Duration::from_secs(1);
    let (mut last_tx, mut last_rx, mut last_t) = (0u64, 0u64, t0);
    let mut interrupted = false;
    let end = t0 + spec.duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if interrupt.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if progress && now >= next {
            let tx: u64 = live
                .tx_packets
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .sum();
            let rx = live.rx_unique.load(Ordering::Relaxed);
            let dt = now.duration_since(last_t).as_secs_f64();
            let gap_ms = cycles_to_ns(live.gap_cycles.load(Ordering::Relaxed), hz) as f64 / 1e6;
            eprintln!(
                "{}",
                progress_line(
                    now.duration_since(t0).as_secs_f64(),
                    (tx - last_tx) as f64 / dt,
                    (rx.saturating_sub(last_rx)) as f64 / dt,
                    tx.saturating_sub(rx),
                    gap_ms
                )
            );
            (last_tx, last_rx, last_t) = (tx, rx, now);
            next += Duration::from_secs(1);
        }
        let wake = end.min(next);
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
    live.stop_tx.store(true, Ordering::Relaxed);
    let wait_until = Instant::now() + Duration::from_secs(5);
    while live.tx_done.load(Ordering::Acquire) < live.tx_packets.len()
        && Instant::now() < wait_until
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    if !interrupt.load(Ordering::Relaxed) {
        std::thread::sleep(spec.drain);
    }
    live.stop_rx.store(true, Ordering::Relaxed);
    interrupted
}
