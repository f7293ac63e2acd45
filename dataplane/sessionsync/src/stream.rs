//! The reliable stream from a master to one backup.
//!
//! - [`Sender`] (master side): events are queued, batched into datagrams up to the MTU,
//!   numbered, kept until acknowledged and resent after `rto`; at most `window` datagrams are
//!   in flight. A backup that asks for it ([`Kind::ResyncRequest`]), or one that falls so far
//!   behind that the backlog passes `max_backlog`, gets a **bulk resync**: the caller hands
//!   every session to [`Sender::begin_bulk`], which supersedes whatever was queued or in
//!   flight; it travels in the same numbered stream between a BulkBegin and a BulkEnd.
//! - [`Receiver`] (backup side): applies datagrams strictly in order to a [`Replica`],
//!   buffers what arrives early, acknowledges cumulatively, and asks for a bulk resync when it
//!   starts or hears a new sender epoch (the master restarted). It is [`Receiver::synced`]
//!   once a bulk resync completed: only then may it claim mastership (commit before claim),
//!   and only then may a returning master take over again (no failback before resync).
//!
//! Sans-I/O: datagrams in and out as bytes, time passed in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::replica::Replica;
use crate::wire::{self, Error, Header, Key, Kind, Op, Record};

/// Sender parameters.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Gateway group id (both ends must agree).
    pub group: u32,
    /// This node's id.
    pub node: u32,
    /// This incarnation (e.g. the start time): a new epoch makes backups resync.
    pub epoch: u32,
    /// Largest UDP payload.
    pub mtu: usize,
    /// Datagrams in flight at most.
    pub window: usize,
    /// Resend a datagram not acknowledged after this long.
    pub rto: Duration,
    /// Queued events past which the backup is resynced in bulk instead.
    pub max_backlog: usize,
}

impl SenderConfig {
    /// Defaults for a LAN underlay: 1400-byte datagrams, 256 in flight, 20 ms resend
    /// timeout, a bulk resync past 1 M queued events.
    pub fn new(group: u32, node: u32, epoch: u32) -> SenderConfig {
        SenderConfig {
            group,
            node,
            epoch,
            mtu: 1400,
            window: 256,
            rto: Duration::from_millis(20),
            max_backlog: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Event(Record),
    Begin,
    End(u64),
}

#[derive(Debug)]
struct Inflight {
    seq: u64,
    bytes: Vec<u8>,
    first_sent: Duration,
    sent_at: Duration,
    records: usize,
}

/// Sender counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Events queued.
    pub events: u64,
    /// Datagrams sent the first time.
    pub datagrams: u64,
    /// Datagrams sent again.
    pub resends: u64,
    /// Acks accepted.
    pub acks: u64,
    /// Bulk resyncs started.
    pub bulk_resyncs: u64,
    /// Sessions sent in bulk resyncs.
    pub bulk_sessions: u64,
    /// Times the backlog overflowed (a bulk resync replaced it).
    pub backlog_overflows: u64,
    /// Datagrams refused, per [`Error::ALL`].
    pub rejected: [u64; 5],
    /// The backup has acknowledged nothing for a while: only the oldest datagram is resent,
    /// now and then.
    pub probing: bool,
}

/// Resend timeouts without an ack after which a backup counts as silent.
pub const SILENT_RTOS: u32 = 10;
/// Resend timeouts between two probes of a silent backup.
pub const PROBE_RTOS: u32 = 5;

/// The master's end of one stream.
#[derive(Debug)]
pub struct Sender {
    cfg: SenderConfig,
    key: Key,
    next_seq: u64,
    acked: u64,
    backlog: VecDeque<Item>,
    queued_events: usize,
    unacked: VecDeque<Inflight>,
    /// When an ack last moved the window.
    last_progress: Duration,
    progressed: bool,
    bulk_wanted: bool,
    begin_queued: bool,
    stats: SenderStats,
}

impl Sender {
    /// A stream that starts by waiting for the backup's resync request.
    pub fn new(cfg: SenderConfig, key: Key) -> Sender {
        Sender {
            cfg,
            key,
            next_seq: 1,
            acked: 0,
            backlog: VecDeque::new(),
            queued_events: 0,
            unacked: VecDeque::new(),
            last_progress: Duration::ZERO,
            progressed: false,
            bulk_wanted: false,
            begin_queued: false,
            stats: SenderStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// Queues a session event.
    pub fn push(&mut self, r: Record) {
        self.stats.events += 1;
        if self.queued_events >= self.cfg.max_backlog {
            self.stats.backlog_overflows += 1;
            self.bulk_wanted = true;
            return;
        }
        self.queued_events += 1;
        self.backlog.push_back(Item::Event(r));
    }

    /// True when the caller should call [`Sender::begin_bulk`] with every session.
    pub fn needs_bulk(&self) -> bool {
        self.bulk_wanted
    }

    /// Starts a bulk resync with every session: it replaces whatever was queued or in
    /// flight (the snapshot contains it).
    pub fn begin_bulk(&mut self, sessions: impl IntoIterator<Item = Record>) {
        self.bulk_wanted = false;
        self.backlog.clear();
        self.unacked.clear();
        self.queued_events = 0;
        self.stats.bulk_resyncs += 1;
        self.backlog.push_back(Item::Begin);
        self.begin_queued = true;
        let mut n = 0u64;
        for mut r in sessions {
            r.op = Op::Add;
            self.backlog.push_back(Item::Event(r));
            n += 1;
        }
        self.stats.bulk_sessions += n;
        self.queued_events = n as usize;
        self.backlog.push_back(Item::End(n));
    }

    /// Events queued or in flight, not yet acknowledged (the sync lag).
    pub fn lag(&self) -> usize {
        self.queued_events + self.unacked.iter().map(|i| i.records).sum::<usize>()
    }

    /// How long the oldest unacknowledged datagram has waited.
    pub fn oldest_unacked(&self, now: Duration) -> Option<Duration> {
        self.unacked
            .front()
            .map(|i| now.saturating_sub(i.first_sent))
    }

    /// Handles a datagram from the backup (acks, resync requests).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let (h, _) = wire::decode(&self.key, bytes).inspect_err(|e| {
            self.stats.rejected[e.index()] += 1;
        })?;
        if h.group != self.cfg.group {
            return Ok(());
        }
        match h.kind {
            Kind::Ack if h.epoch == self.cfg.epoch => {
                self.stats.acks += 1;
                if h.ack > self.acked && h.ack < self.next_seq {
                    self.acked = h.ack;
                    self.progressed = true;
                }
                while self.unacked.front().is_some_and(|i| i.seq <= self.acked) {
                    self.unacked.pop_front();
                }
            }
            // A backup that (re)started asks until a bulk begins; a bulk under way is
            // restarted for it, one not yet sent already answers it.
            Kind::ResyncRequest if !self.begin_queued => self.bulk_wanted = true,
            _ => {}
        }
        Ok(())
    }

    /// Datagrams to send now: resends past their timeout, then new ones while the window
    /// has room.
    pub fn poll(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.progressed) {
            self.last_progress = now;
        }
        // A backup silent for SILENT_RTOS resend timeouts (dead, paused, cut off) gets only
        // the oldest datagram, every PROBE_RTOS timeouts, instead of the whole window every
        // timeout; the first ack that moves the window ends the probing.
        let silent = self.unacked.front().is_some_and(|i| {
            now.saturating_sub(self.last_progress.max(i.first_sent)) >= self.cfg.rto * SILENT_RTOS
        });
        if silent {
            self.stats.probing = true;
            if let Some(i) = self.unacked.front_mut() {
                if now >= i.sent_at + self.cfg.rto * PROBE_RTOS {
                    i.sent_at = now;
                    self.stats.resends += 1;
                    out.push(i.bytes.clone());
                }
            }
        } else {
            self.stats.probing = false;
            for i in self.unacked.iter_mut() {
                if now >= i.sent_at + self.cfg.rto {
                    i.sent_at = now;
                    self.stats.resends += 1;
                    out.push(i.bytes.clone());
                }
            }
        }
        let per = wire::records_per_datagram(self.cfg.mtu).max(1);
        while self.unacked.len() < self.cfg.window {
            let Some(first) = self.backlog.pop_front() else {
                break;
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            let (kind, ack, records) = match first {
                Item::Begin => {
                    self.begin_queued = false;
                    (Kind::BulkBegin, 0, Vec::new())
                }
                Item::End(n) => (Kind::BulkEnd, n, Vec::new()),
                Item::Event(r) => {
                    let mut recs = vec![r];
                    while recs.len() < per {
                        match self.backlog.front() {
                            Some(Item::Event(r)) => {
                                recs.push(*r);
                                self.backlog.pop_front();
                            }
                            _ => break,
                        }
                    }
                    (Kind::Data, 0, recs)
                }
            };
            self.queued_events -= records.len();
            let h = Header {
                kind,
                group: self.cfg.group,
                sender: self.cfg.node,
                epoch: self.cfg.epoch,
                seq,
                ack,
            };
            let bytes = wire::encode(&self.key, &h, &records);
            self.stats.datagrams += 1;
            out.push(bytes.clone());
            if self.unacked.is_empty() {
                self.last_progress = now;
            }
            self.unacked.push_back(Inflight {
                seq,
                bytes,
                first_sent: now,
                sent_at: now,
                records: records.len(),
            });
        }
        out
    }
}

/// Receiver counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams applied in order.
    pub applied: u64,
    /// Session events applied.
    pub events: u64,
    /// Datagrams seen again (already applied).
    pub duplicates: u64,
    /// Datagrams that arrived early and were buffered.
    pub out_of_order: u64,
    /// Early datagrams dropped because the buffer was full (they are resent).
    pub buffer_full: u64,
    /// Datagrams ignored while waiting for a bulk resync to begin.
    pub awaiting_bulk: u64,
    /// Datagrams of another group.
    pub wrong_group: u64,
    /// Bulk resyncs completed.
    pub bulk_completed: u64,
    /// Stale sessions removed at the end of a bulk resync.
    pub bulk_removed: u64,
    /// Resync requests sent.
    pub resync_requests: u64,
    /// Datagrams refused, per [`Error::ALL`].
    pub rejected: [u64; 5],
}

type Pending = (Kind, Vec<Record>);

/// The backup's end of one stream.
#[derive(Debug)]
pub struct Receiver {
    key: Key,
    group: u32,
    node: u32,
    epoch: Option<u32>,
    expected: Option<u64>,
    buffer: BTreeMap<u64, Pending>,
    max_buffer: usize,
    bulk_seen: Option<BTreeSet<wire::SessionKey>>,
    synced: bool,
    need_ack: bool,
    last_request: Option<Duration>,
    /// How often to repeat a resync request that got no answer.
    pub resync_interval: Duration,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver for `group` (this node is `node`) that will ask for a bulk resync.
    pub fn new(group: u32, node: u32, key: Key) -> Receiver {
        Receiver {
            key,
            group,
            node,
            epoch: None,
            expected: None,
            buffer: BTreeMap::new(),
            max_buffer: 1024,
            bulk_seen: None,
            synced: false,
            need_ack: false,
            last_request: None,
            resync_interval: Duration::from_millis(100),
            stats: ReceiverStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// True once a bulk resync has completed in the current epoch: the replica holds every
    /// session the master had, and what happened since.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Handles a datagram from the master, applying what is in order to `replica`.
    pub fn receive(&mut self, bytes: &[u8], replica: &mut Replica) -> Result<(), Error> {
        let (h, records) = wire::decode(&self.key, bytes).inspect_err(|e| {
            self.stats.rejected[e.index()] += 1;
        })?;
        if h.group != self.group {
            self.stats.wrong_group += 1;
            return Ok(());
        }
        if !h.kind.sequenced() {
            return Ok(());
        }
        if self.epoch != Some(h.epoch) {
            if h.kind != Kind::BulkBegin {
                // A new master incarnation: everything we know is suspect until it resyncs.
                if self.epoch.is_some() {
                    self.synced = false;
                }
                self.epoch = Some(h.epoch);
                self.expected = None;
                self.buffer.clear();
                self.last_request = None;
                self.stats.awaiting_bulk += 1;
                return Ok(());
            }
            self.epoch = Some(h.epoch);
            self.expected = None;
            self.buffer.clear();
        }
        self.need_ack = true;
        let expected = match self.expected {
            None if h.kind == Kind::BulkBegin => h.seq,
            None => {
                self.stats.awaiting_bulk += 1;
                return Ok(());
            }
            // A bulk resync supersedes whatever was missing before it.
            Some(e) if h.kind == Kind::BulkBegin && h.seq > e => {
                self.buffer = self.buffer.split_off(&h.seq);
                h.seq
            }
            Some(e) => e,
        };
        self.expected = Some(expected);
        if h.seq < expected || self.buffer.contains_key(&h.seq) {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if h.seq > expected {
            if self.buffer.len() >= self.max_buffer {
                self.stats.buffer_full += 1;
            } else {
                self.stats.out_of_order += 1;
                self.buffer.insert(h.seq, (h.kind, records));
            }
            return Ok(());
        }
        self.apply(h.kind, records, replica);
        let mut next = expected + 1;
        while let Some((kind, recs)) = self.buffer.remove(&next) {
            self.apply(kind, recs, replica);
            next += 1;
        }
        self.expected = Some(next);
        Ok(())
    }

    fn apply(&mut self, kind: Kind, records: Vec<Record>, replica: &mut Replica) {
        self.stats.applied += 1;
        match kind {
            Kind::BulkBegin => {
                self.bulk_seen = Some(BTreeSet::new());
                self.synced = false;
            }
            Kind::BulkEnd => {
                if let Some(seen) = self.bulk_seen.take() {
                    self.stats.bulk_removed += replica.retain(|k| seen.contains(k)) as u64;
                    self.stats.bulk_completed += 1;
                    self.synced = true;
                }
            }
            _ => {
                for r in records {
                    self.stats.events += 1;
                    if let Some(seen) = &mut self.bulk_seen {
                        match r.op {
                            Op::Delete => seen.remove(&r.key),
                            _ => seen.insert(r.key),
                        };
                    }
                    replica.apply(&r);
                }
            }
        }
    }

    /// Datagrams to send now: a cumulative ack after anything arrived, a resync request
    /// while none is under way (repeated every `resync_interval`).
    pub fn poll(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let epoch = self.epoch.unwrap_or(0);
        if self.need_ack {
            if let Some(e) = self.expected {
                self.need_ack = false;
                out.push(self.control(Kind::Ack, epoch, e - 1));
            }
        }
        let waiting = self.expected.is_none();
        if waiting
            && self
                .last_request
                .is_none_or(|t| now >= t + self.resync_interval)
        {
            self.last_request = Some(now);
            self.stats.resync_requests += 1;
            out.push(self.control(Kind::ResyncRequest, epoch, 0));
        }
        out
    }

    fn control(&self, kind: Kind, epoch: u32, ack: u64) -> Vec<u8> {
        wire::encode(
            &self.key,
            &Header {
                kind,
                group: self.group,
                sender: self.node,
                epoch,
                seq: 0,
                ack,
            },
            &[],
        )
    }
}
