//! Connection-table dumps for the admin API. The tables belong to the workers (no locks on
//! the packet path), so the control side asks: it pushes a [`DumpRequest`] onto each
//! worker's dump queue ([`ask`]) and waits for the answers with a deadline ([`collect`]); the
//! worker serves the queue between bursts ([`dump`], called from
//! [`Worker::poll_once`](super::Worker::poll_once)), filtering while it walks its table.
//!
//! A dump walks every slot of the table once (the matching count must be complete, the limit
//! only bounds what is copied): one sequential pass over the table's memory, 64 bytes a slot —
//! 32 MiB for the default 262144 connections, an estimated few milliseconds during which that
//! worker does not poll its queues (a dump spread over several polls would avoid the pause;
//! not needed for an occasional operator command). It allocates the reply, which is fine for
//! a control request, never per packet.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::conntrack::{ConnState, ConnTable, ConnView};

/// Capacity of each worker's dump-request queue.
pub const DUMP_QUEUE: usize = 4;

/// Which connections a dump returns; `None` fields match everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// Conntrack zone (the local VM port index).
    pub zone: Option<u16>,
    /// An address (host order) that is the source or the destination.
    pub ip: Option<u32>,
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Connection state.
    pub state: Option<ConnState>,
}

/// A request the control side puts on a worker's dump queue.
#[derive(Debug)]
pub struct DumpRequest {
    /// Which connections.
    pub filter: ConnFilter,
    /// At most this many in [`ConnDump::connections`].
    pub limit: usize,
    /// Where the answer goes (a channel of capacity 1: the worker never blocks on it).
    pub reply: SyncSender<ConnDump>,
}

/// A worker's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnDump {
    /// Live (unexpired) connections in the table.
    pub entries: u64,
    /// Entries the table holds at most.
    pub capacity: u64,
    /// Connections that match the filter, those beyond the limit included.
    pub matched: u64,
    /// The first `limit` matching connections, in table order.
    pub connections: Vec<ConnView>,
}

/// Why a worker gave no dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Its dump queue is full (earlier requests not served yet: the worker is stuck or
    /// stopped).
    #[error("the worker's dump queue is full (is the worker running?)")]
    Busy,
    /// It did not answer before the deadline.
    #[error("no answer within {0:?} (is the worker running?)")]
    Timeout(Duration),
    /// It dropped the request without answering (it stopped).
    #[error("the worker dropped the request")]
    Gone,
}

impl ConnFilter {
    /// Whether `c` passes the filter.
    #[inline]
    pub fn matches(&self, c: &ConnView) -> bool {
        self.zone.is_none_or(|z| c.flow.zone == z)
            && self.proto.is_none_or(|p| c.flow.proto == p)
            && self.state.is_none_or(|s| c.state == s)
            && self
                .ip
                .is_none_or(|ip| c.flow.src == ip || c.flow.dst == ip)
    }
}

/// The worker's side: walks `table` at `now_ns`, counting live and matching entries and
/// copying the first `limit` matches.
pub fn dump(table: &ConnTable, filter: &ConnFilter, limit: usize, now_ns: u64) -> ConnDump {
    let mut d = ConnDump {
        capacity: table.capacity() as u64,
        ..ConnDump::default()
    };
    for c in table.iter(now_ns) {
        d.entries += 1;
        if !filter.matches(&c) {
            continue;
        }
        d.matched += 1;
        if d.connections.len() < limit {
            d.connections.push(c);
        }
    }
    d
}

/// Answers every request waiting on `queue` from `table` (the worker calls this between
/// bursts). An answer nobody waits for any more is dropped.
pub fn serve(queue: &ArrayQueue<DumpRequest>, table: &ConnTable, now_ns: u64) {
    while let Some(req) = queue.pop() {
        let d = dump(table, &req.filter, req.limit, now_ns);
        // The asker may have given up (timeout): nothing to do then.
        let _ = req.reply.try_send(d);
    }
}

/// The control side: puts a request on `queue`; the answer arrives on the returned
/// receiver.
pub fn ask(
    queue: &ArrayQueue<DumpRequest>,
    filter: ConnFilter,
    limit: usize,
) -> Result<Receiver<ConnDump>, DumpError> {
    let (reply, rx) = mpsc::sync_channel(1);
    queue
        .push(DumpRequest {
            filter,
            limit,
            reply,
        })
        .map_err(|_| DumpError::Busy)?;
    Ok(rx)
}

/// The control side: waits for every asked worker's answer until `timeout` after the call
/// (one deadline for all, so a stopped worker costs `timeout` once, not per worker).
pub fn collect(
    asked: Vec<Result<Receiver<ConnDump>, DumpError>>,
    timeout: Duration,
) -> Vec<Result<ConnDump, DumpError>> {
    let deadline = Instant::now() + timeout;
    asked
        .into_iter()
        .map(|a| {
            let rx = a?;
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left).map_err(|e| match e {
                RecvTimeoutError::Timeout => DumpError::Timeout(timeout),
                RecvTimeoutError::Disconnected => DumpError::Gone,
            })
        })
        .collect()
}
