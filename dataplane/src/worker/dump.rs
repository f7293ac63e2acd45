//! Connection-table and NAT session dumps for the admin API. The tables belong to the
//! workers (no locks on the packet path), so the control side asks: it pushes a
//! [`DumpRequest`] onto each worker's dump queue ([`ask`], [`ask_nat`]) and waits for the
//! answers with a deadline ([`collect`]); the worker serves the queue between bursts
//! ([`serve`], called from [`Worker::poll_once`](super::Worker::poll_once)), filtering while
//! it walks its table ([`dump`], [`dump_nat`]: a NAT table only up to its high-water mark,
//! the slots its sessions have used).
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

use aegis_sessionsync::Record;

use crate::conntrack::{ConnState, ConnTable, ConnView};
use crate::nat::NatTable;

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

/// Which NAT sessions a dump returns; `None` fields match everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatFilter {
    /// The session's VPC (VNI; 0 for the routed gateway's inside).
    pub vpc: Option<u32>,
    /// An address (host order) that is the inside, outside or remote one.
    pub ip: Option<u32>,
    /// IP protocol number.
    pub proto: Option<u8>,
}

impl NatFilter {
    /// Whether `r` passes the filter.
    pub fn matches(&self, r: &Record) -> bool {
        let k = &r.key;
        self.vpc.is_none_or(|v| k.vpc == v)
            && self.proto.is_none_or(|p| k.proto == p)
            && self.ip.is_none_or(|ip| {
                [k.inside_ip, k.remote_ip, r.outside_ip]
                    .iter()
                    .any(|a| u32::from(*a) == ip)
            })
    }
}

/// A request the control side puts on a worker's dump queue.
#[derive(Debug)]
pub enum DumpRequest {
    /// The connection table (stateful security groups).
    Connections {
        /// Which connections.
        filter: ConnFilter,
        /// At most this many in [`ConnDump::connections`].
        limit: usize,
        /// Where the answer goes (a channel of capacity 1: the worker never blocks on it).
        reply: SyncSender<ConnDump>,
    },
    /// The NAT sessions (gateways).
    Nat {
        /// Which sessions.
        filter: NatFilter,
        /// At most this many in [`NatDump::sessions`].
        limit: usize,
        /// Where the answer goes, as for connections.
        reply: SyncSender<NatDump>,
    },
}

/// A worker's NAT sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatDump {
    /// Whether the worker has a NAT table (false: not a NAT gateway).
    pub enabled: bool,
    /// Live (unexpired) sessions.
    pub entries: u64,
    /// Sessions the table holds at most.
    pub capacity: u64,
    /// Sessions that match the filter, those beyond the limit included.
    pub matched: u64,
    /// The first `limit` matching sessions, in table order, as session sync carries them
    /// (with the time each has left).
    pub sessions: Vec<Record>,
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

/// The worker's side for NAT: walks `table` (if the worker has one) at `now_ns`.
pub fn dump_nat(
    table: Option<&NatTable>,
    filter: &NatFilter,
    limit: usize,
    now_ns: u64,
) -> NatDump {
    let Some(table) = table else {
        return NatDump::default();
    };
    let mut d = NatDump {
        enabled: true,
        capacity: table.capacity() as u64,
        ..NatDump::default()
    };
    for r in table.records(now_ns) {
        d.entries += 1;
        if !filter.matches(&r) {
            continue;
        }
        d.matched += 1;
        if d.sessions.len() < limit {
            d.sessions.push(r);
        }
    }
    d
}

/// Answers every request waiting on `queue` from the worker's tables (the worker calls this
/// between bursts). An answer nobody waits for any more is dropped.
pub fn serve(
    queue: &ArrayQueue<DumpRequest>,
    conntrack: &ConnTable,
    nat: Option<&NatTable>,
    now_ns: u64,
) {
    while let Some(req) = queue.pop() {
        // The asker may have given up (timeout): nothing to do then.
        match req {
            DumpRequest::Connections {
                filter,
                limit,
                reply,
            } => {
                let _ = reply.try_send(dump(conntrack, &filter, limit, now_ns));
            }
            DumpRequest::Nat {
                filter,
                limit,
                reply,
            } => {
                let _ = reply.try_send(dump_nat(nat, &filter, limit, now_ns));
            }
        }
    }
}

/// The control side: puts a connection-table request on `queue`; the answer arrives on
/// the returned receiver.
pub fn ask(
    queue: &ArrayQueue<DumpRequest>,
    filter: ConnFilter,
    limit: usize,
) -> Result<Receiver<ConnDump>, DumpError> {
    let (reply, rx) = mpsc::sync_channel(1);
    queue
        .push(DumpRequest::Connections {
            filter,
            limit,
            reply,
        })
        .map_err(|_| DumpError::Busy)?;
    Ok(rx)
}

/// [`ask`] for the NAT sessions.
pub fn ask_nat(
    queue: &ArrayQueue<DumpRequest>,
    filter: NatFilter,
    limit: usize,
) -> Result<Receiver<NatDump>, DumpError> {
    let (reply, rx) = mpsc::sync_channel(1);
    queue
        .push(DumpRequest::Nat {
            filter,
            limit,
            reply,
        })
        .map_err(|_| DumpError::Busy)?;
    Ok(rx)
}

/// The control side: waits for every asked worker's answer until `timeout` after the call
/// (one deadline for all, so a stopped worker costs `timeout` once, not per worker).
pub fn collect<T>(
    asked: Vec<Result<Receiver<T>, DumpError>>,
    timeout: Duration,
) -> Vec<Result<T, DumpError>> {
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
