//! Watch streams: the changes after a revision, filtered by kind and host, in order; a full
//! (filtered) state first when the watcher starts from 0 or from a revision older than the
//! history kept; a progress message (no events) every few seconds while nothing changes, so
//! an agent knows the stream is alive and how far it is.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aegis_api::controlplane::v1::{Event, EventType, Kind, Object, WatchRequest, WatchResponse};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::node::Node;
use crate::model::kind::kind_of;
use crate::model::state::relevant_to_host;
use crate::model::{Change, ChangeType};

/// The stream type of `Watch`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// Events per message at most.
const BATCH: usize = 500;
/// Progress messages while idle.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a watcher asked for.
struct Filter {
    kinds: Vec<i32>,
    host: String,
}

impl Filter {
    fn wants(&self, object: &Object) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&(kind_of(object) as i32)))
            && (self.host.is_empty() || relevant_to_host(object, &self.host))
    }

    /// The event a watcher sees for `change`, if any: a put of an object that stops being
    /// relevant (a route moved to another host) is a delete for this watcher.
    fn event(&self, change: &Change) -> Option<Event> {
        let kind = kind_of(&change.object) as i32;
        let (ty, object) = match change.change_type {
            ChangeType::Delete => (EventType::Delete, &change.object),
            ChangeType::Put if self.wants(&change.object) => (EventType::Put, &change.object),
            ChangeType::Put => match &change.previous {
                Some(prev) if self.wants(prev) => (EventType::Delete, prev),
                _ => return None,
            },
        };
        if ty == EventType::Delete && !self.wants(object) {
            return None;
        }
        Some(Event {
            r#type: ty as i32,
            revision: change.revision,
            kind,
            object: Some(object.clone()),
        })
    }
}

/// Starts a watch for `req` on `node`'s state.
pub fn watch_stream(node: Arc<Node>, req: WatchRequest) -> WatchStream {
    let (tx, rx) = mpsc::channel(16);
    let filter = Filter {
        kinds: req.kinds,
        host: req.host,
    };
    tokio::spawn(async move {
        node.counters.watchers.fetch_add(1, Ordering::Relaxed);
        let _ = run(&node, filter, req.from_revision, &tx).await;
        node.counters.watchers.fetch_sub(1, Ordering::Relaxed);
    });
    Box::pin(ReceiverStream::new(rx))
}

/// What to send next.
enum Next {
    Resync(WatchResponse),
    Events(u64, Vec<Event>),
}

async fn run(
    node: &Node,
    filter: Filter,
    from: u64,
    tx: &mpsc::Sender<Result<WatchResponse, Status>>,
) -> Result<(), ()> {
    let mut revisions = node.machine.subscribe();
    let mut sent = from;
    let mut resync = from == 0;
    loop {
        revisions.borrow_and_update();
        let next = {
            let m = node.machine.read();
            let changes = if resync { None } else { m.changes_since(sent) };
            match changes {
                None => Next::Resync(WatchResponse {
                    revision: m.state.revision(),
                    resync: true,
                    objects: m
                        .state
                        .list(Kind::Unspecified)
                        .into_iter()
                        .filter(|o| filter.wants(o))
                        .cloned()
                        .collect(),
                    events: Vec::new(),
                }),
                Some(changes) => Next::Events(
                    m.state.revision().max(sent),
                    changes.iter().filter_map(|c| filter.event(c)).collect(),
                ),
            }
        };
        match next {
            Next::Resync(msg) => {
                sent = msg.revision;
                resync = false;
                tx.send(Ok(msg)).await.map_err(|_| ())?;
            }
            Next::Events(revision, events) => {
                if revision > sent || !events.is_empty() {
                    let mut chunks = events.chunks(BATCH).peekable();
                    if chunks.peek().is_none() {
                        tx.send(Ok(WatchResponse {
                            revision,
                            ..Default::default()
                        }))
                        .await
                        .map_err(|_| ())?;
                    }
                    while let Some(chunk) = chunks.next() {
                        // Until the last chunk, only what the chunk holds is complete.
                        let upto = if chunks.peek().is_some() {
                            chunk
                                .last()
                                .map_or(sent, |e| e.revision.saturating_sub(1))
                                .max(sent)
                        } else {
                            revision
                        };
                        tx.send(Ok(WatchResponse {
                            revision: upto,
                            events: chunk.to_vec(),
                            ..Default::default()
                        }))
                        .await
                        .map_err(|_| ())?;
                    }
                    sent = revision;
                }
            }
        }
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() {
                    return Err(());
                }
            }
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                tx.send(Ok(WatchResponse { revision: sent, ..Default::default() }))
                    .await
                    .map_err(|_| ())?;
            }
            () = tx.closed() => return Err(()),
        }
    }
}
