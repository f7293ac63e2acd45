//! The single-writer publish cell between the control thread and the workers.
//!
//! The control thread [`publish`](SnapshotCell::publish)es a new [`Snapshot`]; each worker
//! holds a [`SnapshotReader`] and calls [`SnapshotReader::get`] once per burst, which costs one
//! atomic load unless something changed. Workers never lock, allocate or free: the cell keeps
//! replaced snapshots alive until every reader has moved past them, so the last reference —
//! and the freeing of FIB chunks — is always dropped on the control thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::Snapshot;

/// Publishes snapshots to workers; see the module documentation.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    /// Generation each live reader has loaded (control-side bookkeeping only).
    readers: Mutex<Vec<Arc<AtomicU64>>>,
    /// Replaced snapshots with the generation that replaced them.
    retired: Mutex<Vec<(u64, Arc<Snapshot>)>>,
}

/// A worker's handle on a [`SnapshotCell`]: caches the current snapshot and reloads it only
/// when the cell's generation moved.
#[derive(Debug)]
pub struct SnapshotReader {
    cell: Arc<SnapshotCell>,
    seen: Arc<AtomicU64>,
    generation: u64,
    snapshot: Arc<Snapshot>,
}

impl SnapshotCell {
    /// A cell holding `initial` at generation 0.
    pub fn new(initial: Arc<Snapshot>) -> Arc<SnapshotCell> {
        Arc::new(SnapshotCell {
            current: ArcSwap::new(initial),
            generation: AtomicU64::new(0),
            readers: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Makes `snapshot` current and bumps the generation (control thread only). Replaced
    /// snapshots that no reader can still hold are released here.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let old = self.current.swap(snapshot);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        lock(&self.retired).push((generation, old));
        self.reclaim();
    }

    /// Generation of the current snapshot: changes on every publish.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot (a reference-count increment).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A new reader for a worker, starting at the current snapshot.
    pub fn reader(self: &Arc<Self>) -> SnapshotReader {
        let generation = self.generation();
        let snapshot = self.load();
        let seen = Arc::new(AtomicU64::new(generation));
        lock(&self.readers).push(Arc::clone(&seen));
        SnapshotReader {
            cell: Arc::clone(self),
            seen,
            generation,
            snapshot,
        }
    }

    /// Releases replaced snapshots every live reader has moved past. Called by
    /// [`SnapshotCell::publish`]; call it periodically to free memory sooner.
    pub fn reclaim(&self) {
        let oldest_seen = {
            let mut readers = lock(&self.readers);
            // A reader that was dropped leaves only our reference behind.
            readers.retain(|seen| Arc::strong_count(seen) > 1);
            readers
                .iter()
                .map(|seen| seen.load(Ordering::Acquire))
                .min()
                .unwrap_or(u64::MAX)
        };
        // A snapshot replaced at generation g may be held by readers that saw less than g.
        let released: Vec<_> = {
            let mut retired = lock(&self.retired);
            let (keep, release): (Vec<_>, Vec<_>) =
                retired.drain(..).partition(|(g, _)| *g > oldest_seen);
            *retired = keep;
            release
        };
        drop(released);
    }

    /// Number of replaced snapshots still kept for slow readers.
    pub fn retired(&self) -> usize {
        lock(&self.retired).len()
    }
}

impl SnapshotReader {
    /// The current snapshot, reloaded only if the cell published since the last call.
    #[inline]
    pub fn get(&mut self) -> &Snapshot {
        let generation = self.cell.generation();
        if generation != self.generation {
            self.reload(generation);
        }
        &self.snapshot
    }

    /// True if the cell published since the last [`SnapshotReader::get`].
    #[inline]
    pub fn changed(&self) -> bool {
        self.cell.generation() != self.generation
    }

    /// Generation of the snapshot this reader holds.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    #[cold]
    fn reload(&mut self, generation: u64) {
        // Replacing drops our reference to the old snapshot; the cell still holds one, so
        // nothing is freed here. Only then do we announce that we moved on.
        self.snapshot = self.cell.load();
        self.generation = generation;
        self.seen.store(generation, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;

    use super::*;
    use crate::fib::Fib;

    fn snap(revision: u64, fib: &Arc<Fib>) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            revision,
            ports: Arc::from(Vec::new()),
            fib: Arc::clone(fib),
            adjacencies: Arc::from(Vec::new()),
            neighbours: Arc::new(Default::default()),
            overlay: Default::default(),
            nat: Default::default(),
        })
    }

    #[test]
    fn readers_reload_only_after_a_publish() {
        let fib = Arc::new(Fib::new());
        let cell = SnapshotCell::new(snap(1, &fib));
        let mut r = cell.reader();
        assert!(!r.changed());
        let first: *const Snapshot = r.get();
        assert!(std::ptr::eq(first, r.get()), "no reload without a publish");
        cell.publish(snap(2, &fib));
        assert!(r.changed());
        assert_eq!(r.get().revision, 2);
        assert!(!r.changed());
        assert_eq!(r.generation(), 1);
        assert_eq!(cell.generation(), 1);
        assert_eq!(cell.load().revision, 2);
    }

    #[test]
    fn replaced_snapshots_are_freed_by_the_publisher_once_readers_moved_on() {
        let fib = Arc::new(Fib::new());
        let cell = SnapshotCell::new(snap(1, &fib));
        let mut slow = cell.reader();
        let mut fast = cell.reader();
        let first: Weak<Snapshot> = Arc::downgrade(&cell.load());
        cell.publish(snap(2, &fib));
        fast.get();
        cell.publish(snap(3, &fib));
        fast.get();
        // `slow` still holds revision 1: it and everything after it stay alive.
        assert_eq!(cell.retired(), 2);
        assert!(first.upgrade().is_some());
        assert_eq!(slow.get().revision, 3);
        // The reader's own drop of revision 1 was not the last reference...
        assert!(first.upgrade().is_some());
        // ...the publisher's next reclaim is.
        cell.reclaim();
        assert!(first.upgrade().is_none());
        assert_eq!(cell.retired(), 0);
        // A dropped reader does not hold anything back.
        drop(slow);
        cell.publish(snap(4, &fib));
        fast.get();
        cell.reclaim();
        assert_eq!(cell.retired(), 0);
    }

    #[test]
    fn concurrent_readers_see_monotonic_revisions() {
        let fib = Arc::new(Fib::new());
        let cell = SnapshotCell::new(snap(0, &fib));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut r = cell.reader();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut seen = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let rev = r.get().revision;
                        assert!(rev >= last, "revision went back from {last} to {rev}");
                        seen += u64::from(rev != last);
                        last = rev;
                    }
                    (last, seen)
                })
            })
            .collect();
        for rev in 1..=2000 {
            cell.publish(snap(rev, &fib));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        for t in readers {
            let (last, _) = t.join().unwrap();
            assert_eq!(last, 2000);
        }
        cell.reclaim();
        assert_eq!(cell.retired(), 0, "readers are dropped: nothing to keep");
    }
}
