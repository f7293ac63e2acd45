//! The control side of capture: [`CaptureHub`] starts a capture on every worker (a ring
//! per worker, a [`TapCommand`] on each worker's queue) and hands back a
//! [`CaptureSession`]; reading the session drains the rings; dropping it stops the capture
//! on every worker. At most [`MAX_CAPTURES`] run at once. [`CaptureHub::close`] (the
//! daemon's SIGTERM) tells every session to end.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;

use super::ring::{CaptureRing, Record};
use super::tap::{CaptureSpec, TapCommand, MAX_CAPTURES};
use crate::worker::Clock;

/// Records in each worker's ring of a capture (2 KiB each: 2 MiB per worker and capture).
pub const RING_RECORDS: usize = 1024;
/// Capacity of each worker's capture command queue: a start and a stop per capture.
pub const TAP_QUEUE: usize = 2 * MAX_CAPTURES;

/// Starts and stops captures on a dataplane's workers.
pub struct CaptureHub {
    queues: Vec<Arc<ArrayQueue<TapCommand>>>,
    clock: Clock,
    next_id: AtomicU64,
    running: AtomicUsize,
    closed: AtomicBool,
    /// Packets lost to full rings by captures that ended.
    overflow_ended: AtomicU64,
    live: std::sync::Mutex<Vec<Arc<[Arc<CaptureRing>]>>>,
}

/// Why a capture could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// [`MAX_CAPTURES`] captures run already.
    #[error("{MAX_CAPTURES} captures are running already; stop one first")]
    TooMany,
    /// A worker's queue is full (it is not serving it: stopped or stuck).
    #[error("worker {0} does not take capture commands (is it running?)")]
    Busy(usize),
    /// The dataplane is shutting down.
    #[error("the dataplane is shutting down")]
    Closed,
}

/// One running capture, seen from the control side.
pub struct CaptureSession {
    hub: Arc<CaptureHub>,
    id: u64,
    rings: Arc<[Arc<CaptureRing>]>,
    /// Wall-clock nanoseconds minus worker-clock nanoseconds at the start.
    wall_offset_ns: i128,
}

impl CaptureHub {
    /// A hub over the workers' command queues; `clock` is the workers' clock.
    pub fn new(queues: Vec<Arc<ArrayQueue<TapCommand>>>, clock: Clock) -> Arc<CaptureHub> {
        Arc::new(CaptureHub {
            queues,
            clock,
            next_id: AtomicU64::new(1),
            running: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            overflow_ended: AtomicU64::new(0),
            live: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A fresh command queue for one worker.
    pub fn queue() -> Arc<ArrayQueue<TapCommand>> {
        Arc::new(ArrayQueue::new(TAP_QUEUE))
    }

    /// Starts `spec` on every worker.
    pub fn start(self: &Arc<Self>, spec: CaptureSpec) -> Result<CaptureSession, CaptureError> {
        if self.is_closed() {
            return Err(CaptureError::Closed);
        }
        if self
            .running
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_CAPTURES).then_some(n + 1))
            .is_err()
        {
            return Err(CaptureError::TooMany);
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let spec = Arc::new(spec);
        let rings: Arc<[Arc<CaptureRing>]> = self
            .queues
            .iter()
            .map(|_| Arc::new(CaptureRing::new(RING_RECORDS)))
            .collect();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let session = CaptureSession {
            hub: self.clone(),
            id,
            rings: rings.clone(),
            wall_offset_ns: wall - i128::from(self.clock.now_ns()),
        };
        for (w, (q, ring)) in self.queues.iter().zip(rings.iter()).enumerate() {
            let cmd = TapCommand::Start {
                id,
                spec: spec.clone(),
                ring: ring.clone(),
            };
            if q.push(cmd).is_err() {
                // Dropping the session stops the workers that did start.
                return Err(CaptureError::Busy(w));
            }
        }
        self.lock_live().push(rings);
        Ok(session)
    }

    /// Ends every capture: sessions report [`CaptureSession::closed`] from now on and no
    /// new capture starts.
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// True once [`CaptureHub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Captures running.
    pub fn running(&self) -> usize {
        self.running.load(Relaxed)
    }

    /// Packets lost to full capture rings since start, over every capture (the
    /// `capture_overflow` counter).
    pub fn overflow_total(&self) -> u64 {
        let live: u64 = self
            .lock_live()
            .iter()
            .flat_map(|rings| rings.iter())
            .map(|r| r.overflow())
            .sum();
        self.overflow_ended.load(Relaxed) + live
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, Vec<Arc<[Arc<CaptureRing>]>>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CaptureSession {
    /// Hands up to `max` captured packets to `f` with the worker index and the wall-clock
    /// time (nanoseconds since the Unix epoch); returns how many.
    pub fn drain(&self, max: usize, mut f: impl FnMut(usize, &Record, u64)) -> usize {
        let mut n = 0;
        for (w, ring) in self.rings.iter().enumerate() {
            n += ring.drain(max - n, |r| {
                let wall = (i128::from(r.ts_ns) + self.wall_offset_ns).max(0) as u64;
                f(w, r, wall)
            });
        }
        n
    }

    /// Packets the workers captured so far (some may still wait in the rings).
    pub fn captured(&self) -> u64 {
        self.rings.iter().map(|r| r.captured()).sum()
    }

    /// Packets that matched but found their worker's ring full.
    pub fn overflow(&self) -> u64 {
        self.rings.iter().map(|r| r.overflow()).sum()
    }

    /// True when the dataplane is shutting down: the reader should end the session.
    pub fn closed(&self) -> bool {
        self.hub.is_closed()
    }
}

impl Drop for CaptureSession {
    fn drop(&mut self) {
        for q in &self.hub.queues {
            // A worker that does not serve its queue any more keeps its tap; it only ever
            // fills its bounded ring, which nobody reads.
            let _ = q.push(TapCommand::Stop { id: self.id });
        }
        self.hub.overflow_ended.fetch_add(self.overflow(), Relaxed);
        self.hub
            .lock_live()
            .retain(|rings| !Arc::ptr_eq(rings, &self.rings));
        self.hub.running.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::ring::Point;
    use crate::capture::tap::Taps;
    use crate::capture::Program;

    fn spec() -> CaptureSpec {
        CaptureSpec {
            rx_ports: 1,
            tx_ports: 0,
            drops: false,
            nodes: 0,
            filter: Program::accept_all(),
            snaplen: 64,
        }
    }

    /// Serves a worker's queue the way the worker does.
    fn serve(q: &ArrayQueue<TapCommand>, taps: &mut Taps) {
        while let Some(c) = q.pop() {
            taps.apply(c);
        }
    }

    #[test]
    fn start_capture_drain_stop() {
        let queues = vec![CaptureHub::queue(), CaptureHub::queue()];
        let hub = CaptureHub::new(queues.clone(), Clock::monotonic());
        let mut taps: Vec<Taps> = (0..2).map(|_| Taps::default()).collect();
        let s = hub.start(spec()).unwrap();
        for (q, t) in queues.iter().zip(&mut taps) {
            serve(q, t);
        }
        taps[0].capture(Point::Rx, 0, &[1; 10], 5);
        taps[1].capture(Point::Rx, 0, &[2; 10], 6);
        taps[1].capture(Point::Rx, 1, &[3; 10], 7);
        let mut got = Vec::new();
        assert_eq!(s.drain(10, |w, r, wall| got.push((w, r.data[0], wall))), 2);
        assert_eq!(
            got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
            [(0, 1), (1, 2)]
        );
        assert!(
            got[0].2 > 1_600_000_000_000_000_000,
            "wall clock: {}",
            got[0].2
        );
        assert_eq!((s.captured(), s.overflow(), hub.running()), (2, 0, 1));
        drop(s);
        assert_eq!(hub.running(), 0);
        for (q, t) in queues.iter().zip(&mut taps) {
            serve(q, t);
            assert!(t.is_empty());
        }
    }

    #[test]
    fn at_most_max_captures_and_none_after_close() {
        let queues = vec![CaptureHub::queue()];
        let hub = CaptureHub::new(queues.clone(), Clock::monotonic());
        let mut taps = Taps::default();
        let sessions: Vec<_> = (0..MAX_CAPTURES)
            .map(|_| {
                let s = hub.start(spec()).unwrap();
                serve(&queues[0], &mut taps);
                s
            })
            .collect();
        assert_eq!(hub.start(spec()).err(), Some(CaptureError::TooMany));
        drop(sessions);
        serve(&queues[0], &mut taps);
        assert!(taps.is_empty());
        let s = hub.start(spec()).unwrap();
        hub.close();
        assert!(s.closed());
        assert_eq!(hub.start(spec()).err(), Some(CaptureError::Closed));
    }

    #[test]
    fn a_worker_that_does_not_serve_its_queue_is_reported() {
        let queues = vec![CaptureHub::queue()];
        let hub = CaptureHub::new(queues.clone(), Clock::monotonic());
        let mut kept = Vec::new();
        // Nobody serves the queue: each start and stop stays in it.
        for _ in 0..MAX_CAPTURES {
            kept.push(hub.start(spec()).unwrap());
        }
        drop(kept);
        assert_eq!(hub.start(spec()).err(), Some(CaptureError::Busy(0)));
        assert_eq!(hub.running(), 0);
    }

    #[test]
    fn overflow_total_counts_live_and_ended_captures() {
        let queues = vec![CaptureHub::queue()];
        let hub = CaptureHub::new(queues.clone(), Clock::monotonic());
        let mut taps = Taps::default();
        let s = hub.start(spec()).unwrap();
        serve(&queues[0], &mut taps);
        for _ in 0..RING_RECORDS + 3 {
            taps.capture(Point::Rx, 0, &[0; 60], 1);
        }
        assert_eq!((s.overflow(), hub.overflow_total()), (3, 3));
        drop(s);
        assert_eq!(hub.overflow_total(), 3);
    }
}
