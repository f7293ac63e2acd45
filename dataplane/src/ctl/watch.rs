//! The `TraceWatch` RPC (`aegisctl trace watch`): the request checked ([`query`]), the watch
//! started on the workers ([`start`]), and the stream ([`stream`]): `started`, then one
//! path per watched packet as it completes (taken from the trace store's ring for the
//! watch), `stats` about every second, and a last `stats` when the count or the duration is
//! reached or the dataplane shuts down. The client going away ends it too: the watch stops
//! on the workers and its unread paths are forgotten.

use std::sync::Arc;
use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use tokio::sync::mpsc;

use super::backend::{AdminBackend, AdminError};
use super::capture::{duration, program};
use super::pump::{Limits, Source};
use crate::capture::Program;
use crate::state::Snapshot;
use crate::trace::store::StoredHop;
use crate::trace::watch::{WatchError, WatchSession, DEFAULT_RATE, MAX_PORTS, MAX_RATE};
use crate::trace::{Action, Detail, WatchHub, WatchSpec};

/// How often the stream takes completed paths from the store.
const TAKE_EVERY: Duration = Duration::from_millis(10);
/// Most paths taken per round.
const TAKE_MAX: usize = 256;

/// A checked watch request.
#[derive(Debug, Clone)]
pub struct WatchQuery {
    /// Port names; empty = every port.
    pub ports: Vec<String>,
    /// The user's filter text.
    pub filter_text: String,
    /// The validated filter.
    pub filter: Program,
    /// Stop after this many paths (0: no limit).
    pub count: u64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Packets traced per second per worker.
    pub rate: u32,
    /// Match the inner frames of Geneve packets.
    pub overlay: bool,
}

/// Checks a `TraceWatch` request.
pub fn query(req: pb::TraceWatchRequest) -> Result<WatchQuery, AdminError> {
    let rate = match req.rate {
        0 => DEFAULT_RATE,
        r if r <= MAX_RATE => r,
        r => {
            return Err(AdminError::invalid(
                "rate",
                format!("{r} packets/s per worker is more than the {MAX_RATE} a watch may trace"),
            ))
        }
    };
    Ok(WatchQuery {
        filter: program(&req.filter, &req.program)?,
        filter_text: req.filter,
        ports: req.ports,
        count: req.count,
        duration: duration(req.duration_seconds)?,
        rate,
        overlay: !req.no_overlay,
    })
}

/// A started watch.
pub struct WatchStart {
    /// Host name of the dataplane.
    pub host: String,
    /// The ports it matches on.
    pub ports: Vec<String>,
    /// The running watch.
    pub session: WatchSession,
    /// What the client asked.
    pub query: WatchQuery,
}

/// Starts `query` on `hub` for a dataplane named `host` whose ports, in index order, are
/// `ports`. `NotFound` (field "ports") for a name that is no port.
pub fn start(
    hub: &Arc<WatchHub>,
    host: String,
    ports: &[String],
    query: WatchQuery,
) -> Result<WatchStart, AdminError> {
    let mut mask = 0u64;
    let mut names = Vec::new();
    for (i, name) in ports.iter().enumerate() {
        let wanted = query.ports.is_empty() || query.ports.contains(name);
        if wanted && i < MAX_PORTS {
            mask |= 1 << i;
            names.push(name.clone());
        } else if wanted && !query.ports.is_empty() {
            return Err(AdminError::invalid(
                "ports",
                format!("port {name:?}: a watch covers the first {MAX_PORTS} ports only"),
            ));
        }
    }
    if let Some(unknown) = query.ports.iter().find(|n| !ports.contains(n)) {
        return Err(AdminError::not_found(
            "ports",
            format!("no port {unknown:?} (ports: {})", ports.join(", ")),
        ));
    }
    let spec = WatchSpec {
        rx_ports: mask,
        overlay: query.overlay,
        filter: query.filter.clone(),
        rate: query.rate,
    };
    let session = hub.start(spec).map_err(|e| match e {
        WatchError::TooMany => AdminError::invalid("watch", e.to_string()),
        WatchError::Busy(_) | WatchError::Closed => AdminError::Internal(e.to_string()),
    })?;
    Ok(WatchStart {
        host,
        ports: names,
        session,
        query,
    })
}

/// One watched packet's path as the API shows it; names come from `snap`.
pub fn path_view(trace: u64, hops: &[StoredHop], snap: &Snapshot) -> pb::WatchedPath {
    let views: Vec<pb::TraceHop> = hops
        .iter()
        .map(|h| super::trace::hop_view(h, snap))
        .collect();
    let summary = hops
        .iter()
        .find_map(|h| match h.record.detail {
            Detail::Packet(p) => Some(p.describe()),
            _ => None,
        })
        .unwrap_or_default();
    let mut path = pb::WatchedPath {
        trace_id: trace,
        summary,
        duration_ns: match (hops.first(), hops.last()) {
            (Some(a), Some(b)) => b.unix_ns.saturating_sub(a.unix_ns),
            _ => 0,
        },
        ..Default::default()
    };
    // The packet itself died where it was dropped, even if an ICMP error about it went on.
    let dropped = hops
        .iter()
        .zip(&views)
        .find(|(h, _)| matches!(h.record.action, Action::Dropped(_)));
    if let Some((_, v)) = dropped {
        path.verdict = "dropped".into();
        path.reason = v.reason.clone();
        path.node = v.node.clone();
    } else if let Some((h, v)) = hops.last().zip(views.last()) {
        path.verdict = match h.record.action {
            Action::Transmitted { .. } => "transmitted",
            Action::Delivered { .. } => "delivered",
            Action::Consumed => "consumed",
            Action::HandedOff { .. } => "handed_off",
            _ => "incomplete",
        }
        .into();
        path.port = v.port.clone();
        path.node = v.node.clone();
    }
    path.rule = views
        .iter()
        .rev()
        .find(|v| !v.rule.is_empty())
        .map(|v| v.rule.clone())
        .unwrap_or_default();
    path.hops = views;
    path
}

type Events = mpsc::Sender<Result<pb::TraceWatchEvent, tonic::Status>>;

fn event(e: pb::trace_watch_event::Event) -> pb::TraceWatchEvent {
    pb::TraceWatchEvent { event: Some(e) }
}

/// A running watch's stream source; dropping it forgets the watch's unread paths, however
/// the stream ends (and the session with it stops the watch on the workers).
struct Paths {
    start: WatchStart,
    backend: Arc<dyn AdminBackend>,
}

impl Drop for Paths {
    fn drop(&mut self) {
        self.backend.end_watch(self.start.session.watch());
    }
}

impl Source for Paths {
    type Event = pb::TraceWatchEvent;

    fn take(&mut self, max: usize) -> Vec<pb::TraceWatchEvent> {
        self.backend
            .watch_paths(self.start.session.watch(), max)
            .into_iter()
            .map(|p| event(pb::trace_watch_event::Event::Path(p)))
            .collect()
    }

    fn closed(&self) -> bool {
        self.start.session.closed()
    }

    fn stats(&self, sent: u64, last: bool, reason: &str) -> pb::TraceWatchEvent {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.start.session;
        let c = s.counters();
        event(pb::trace_watch_event::Event::Stats(pb::TraceWatchStats {
            matched: c.matched.load(Relaxed),
            traced: c.traced.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            no_slot: c.no_slot.load(Relaxed),
            sent,
            overwritten: self.backend.watch_overwritten(s.watch()),
            last,
            reason: reason.to_string(),
        }))
    }
}

/// Feeds `tx` with the watch's paths until the count or the duration is reached, the
/// dataplane shuts down or the client goes away; the watch stops when this returns.
pub async fn stream(start: WatchStart, backend: Arc<dyn AdminBackend>, tx: Events) {
    let started = event(pb::trace_watch_event::Event::Started(
        pb::TraceWatchStarted {
            host: start.host.clone(),
            watch: u32::from(start.session.watch()),
            rate: start.query.rate,
            ports: start.ports.clone(),
        },
    ));
    let limits = Limits {
        count: start.query.count,
        duration: start.query.duration,
    };
    let source = Paths { start, backend };
    super::pump::pump(tx, started, source, limits, TAKE_EVERY, TAKE_MAX).await;
}
