//! A resumable follower of one host's slice of the desired state (`DesiredState.Watch` with
//! `host` set).
//!
//! [`Replica`] is the sans-I/O part: the objects by (kind, name) and the revision they are
//! complete up to; it applies full states (`resync`) and event batches, and ignores anything
//! that is not newer than what it has. [`Follower::run`] drives it: it connects (trying every
//! address in turn), watches from the replica's revision, and after a disconnect reconnects
//! with backoff (100 ms doubling to 2 s) and resumes where it stopped — the server answers with
//! the missed events, or with a full state when it no longer has them. Every time the replica
//! changes or its revision moves, the consumer gets a [`Synced`] on a `tokio::sync::watch`
//! channel: a consistent view of the slice as of one revision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_api::controlplane::v1::{
    desired_state_client::DesiredStateClient, object::Spec, EventType, Kind, Object, WatchRequest,
    WatchResponse,
};
use tokio::sync::watch;

use crate::connect::{error_chain, Connector};

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A watch stream silent for this long is given up and reconnected (the server sends
/// progress every 5 s).
pub const STREAM_SILENCE: Duration = Duration::from_secs(15);

/// The key of an object in a replica: its kind (as the API's enum value) and name.
pub type Key = (i32, String);

/// The kind of an object, from its spec.
pub fn kind_of(object: &Object) -> Kind {
    match &object.spec {
        None => Kind::Unspecified,
        Some(Spec::Host(_)) => Kind::Host,
        Some(Spec::Vpc(_)) => Kind::Vpc,
        Some(Spec::Subnet(_)) => Kind::Subnet,
        Some(Spec::Port(_)) => Kind::Port,
        Some(Spec::Route(_)) => Kind::Route,
        Some(Spec::SecurityGroup(_)) => Kind::SecurityGroup,
        Some(Spec::ExternalNetwork(_)) => Kind::ExternalNetwork,
        Some(Spec::GatewayGroup(_)) => Kind::GatewayGroup,
        Some(Spec::FloatingIp(_)) => Kind::FloatingIp,
        Some(Spec::SnatRule(_)) => Kind::SnatRule,
    }
}

/// A local copy of the watched objects and the revision it is complete up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    objects: BTreeMap<Key, Object>,
    revision: u64,
    /// A full state has been received (revision 0 with no resync means "nothing yet").
    synced: bool,
}

/// What [`Replica::apply`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The message was not newer than the replica: nothing changed.
    Ignored,
    /// The revision moved, the objects did not.
    Progress,
    /// The objects changed.
    Changed,
}

impl Replica {
    /// An empty replica at revision 0.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// The revision the replica is complete up to.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// True once a full state has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The objects, by (kind, name).
    pub fn objects(&self) -> &BTreeMap<Key, Object> {
        &self.objects
    }

    /// The object `name` of `kind`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Object> {
        self.objects.get(&(kind as i32, name.to_owned()))
    }

    /// Applies one Watch message. A full state (`resync`) replaces the objects unless it is
    /// older than the replica; events are applied in order, skipping those at or below the
    /// replica's revision; then the revision moves to the message's.
    pub fn apply(&mut self, msg: &WatchResponse) -> Applied {
        if msg.resync {
            if self.synced && msg.revision < self.revision {
                return Applied::Ignored;
            }
            let objects: BTreeMap<Key, Object> = msg
                .objects
                .iter()
                .map(|o| ((kind_of(o) as i32, o.name.clone()), o.clone()))
                .collect();
            let changed = !self.synced || objects != self.objects;
            let moved = msg.revision != self.revision;
            self.objects = objects;
            self.revision = msg.revision;
            self.synced = true;
            return match (changed, moved) {
                (true, _) => Applied::Changed,
                (false, true) => Applied::Progress,
                (false, false) => Applied::Ignored,
            };
        }
        // Events at or below the revision the replica had before this message are replays.
        // The message's own revision says how far it is complete: a big batch comes in
        // chunks, and the events of one revision may straddle two of them.
        let base = self.revision;
        let mut changed = false;
        for event in &msg.events {
            if event.revision <= base {
                continue;
            }
            let Some(object) = &event.object else {
                continue;
            };
            // The event's kind is authoritative; the spec's (a put always has one) agrees.
            let kind = match Kind::try_from(event.kind) {
                Ok(Kind::Unspecified) | Err(_) => kind_of(object) as i32,
                Ok(k) => k as i32,
            };
            let key = (kind, object.name.clone());
            match EventType::try_from(event.r#type) {
                Ok(EventType::Put) => {
                    if self.objects.get(&key) != Some(object) {
                        self.objects.insert(key, object.clone());
                        changed = true;
                    }
                }
                Ok(EventType::Delete) => changed |= self.objects.remove(&key).is_some(),
                _ => tracing::warn!(r#type = event.r#type, name = %object.name,
                    "watch event of unknown type ignored"),
            }
        }
        let moved = msg.revision > base;
        if moved {
            self.revision = msg.revision;
        }
        match (changed, moved) {
            (true, _) => Applied::Changed,
            (false, true) => Applied::Progress,
            (false, false) => Applied::Ignored,
        }
    }
}

/// The slice as of one revision, for the consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    /// Everything up to this revision is in `objects`.
    pub revision: u64,
    /// The host's objects by (kind, name).
    pub objects: Arc<BTreeMap<Key, Object>>,
}

/// Connection state of a follower, for status displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The watch stream is open.
    pub connected: bool,
    /// The node it is open to (or was last).
    pub server: Option<String>,
    /// The last connection or stream error.
    pub last_error: Option<String>,
}

/// Follows the slice of one host.
#[derive(Debug)]
pub struct Follower {
    connector: Connector,
    host: String,
    kinds: Vec<Kind>,
    replica: Replica,
}

impl Follower {
    /// A follower of `host`'s objects of `kinds` (empty: every kind).
    pub fn new(connector: Connector, host: impl Into<String>, kinds: Vec<Kind>) -> Follower {
        Follower {
            connector,
            host: host.into(),
            kinds,
            replica: Replica::new(),
        }
    }

    /// Follows until `out` has no receivers left: every change of the replica (or of its
    /// revision) is sent on `out`; the connection state goes to `link`.
    pub async fn run(mut self, out: watch::Sender<Option<Synced>>, link: watch::Sender<LinkInfo>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if out.is_closed() {
                return;
            }
            match self.follow_once(&out, &link, &mut backoff).await {
                Ok(()) => {
                    tracing::info!(host = %self.host, "control-plane watch ended; reconnecting")
                }
                Err(e) => {
                    tracing::warn!(host = %self.host, error = %e, retry_in = ?backoff,
                        "control-plane watch failed; following from revision {} when it is back",
                        self.replica.revision());
                    link.send_modify(|l| {
                        l.connected = false;
                        l.last_error = Some(e);
                    });
                }
            }
            self.connector.failed();
            link.send_modify(|l| l.connected = false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection: watch from the replica's revision until the stream ends or fails.
    async fn follow_once(
        &mut self,
        out: &watch::Sender<Option<Synced>>,
        link: &watch::Sender<LinkInfo>,
        backoff: &mut Duration,
    ) -> Result<(), String> {
        let channel = self.connector.channel().await.map_err(|e| e.to_string())?;
        let server = self.connector.current_address().map(str::to_owned);
        let mut client = DesiredStateClient::new(channel);
        let request = WatchRequest {
            from_revision: self.replica.revision(),
            kinds: self.kinds.iter().map(|k| *k as i32).collect(),
            host: self.host.clone(),
        };
        let mut stream = client
            .watch(request)
            .await
            .map_err(|s| format!("Watch: {}: {}", s.code(), s.message()))?
            .into_inner();
        tracing::info!(host = %self.host, server = server.as_deref().unwrap_or("?"),
            from_revision = self.replica.revision(), "following the control plane");
        link.send_modify(|l| {
            l.connected = true;
            l.server = server.clone();
            l.last_error = None;
        });
        loop {
            // The server sends a progress message every 5 s while idle: silence for longer
            // than STREAM_SILENCE means the connection is dead even if TCP has not noticed.
            let next = tokio::time::timeout(STREAM_SILENCE, stream.message()).await;
            let Ok(next) = next else {
                return Err(format!(
                    "watch stream: nothing received for {STREAM_SILENCE:?}; reconnecting"
                ));
            };
            let msg = match next {
                Ok(Some(msg)) => msg,
                Ok(None) => return Ok(()),
                Err(s) => {
                    return Err(format!(
                        "watch stream: {}: {}{}",
                        s.code(),
                        s.message(),
                        std::error::Error::source(&s)
                            .map(|e| format!(" ({})", error_chain(e)))
                            .unwrap_or_default()
                    ))
                }
            };
            *backoff = BACKOFF_MIN;
            let result = self.replica.apply(&msg);
            tracing::debug!(
                revision = msg.revision,
                resync = msg.resync,
                events = msg.events.len(),
                ?result,
                "watch message"
            );
            if result != Applied::Ignored || (msg.resync && out.borrow().is_none()) {
                let synced = Synced {
                    revision: self.replica.revision(),
                    objects: Arc::new(self.replica.objects().clone()),
                };
                if out.send(Some(synced)).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_api::controlplane::v1::{Event, Host, HostAddress, Route};

    fn host(name: &str, address: &str, rev: u64) -> Object {
        Object {
            name: name.into(),
            created_revision: rev,
            modified_revision: rev,
            spec: Some(Spec::Host(Host {
                addresses: vec![HostAddress {
                    port: "p0".into(),
                    address: address.into(),
                }],
                ..Host::default()
            })),
        }
    }

    fn route(name: &str, prefix: &str, rev: u64) -> Object {
        Object {
            name: name.into(),
            created_revision: rev,
            modified_revision: rev,
            spec: Some(Spec::Route(Route {
                host: "h".into(),
                prefix: prefix.into(),
                next_hop: "10.0.0.2".into(),
                ..Route::default()
            })),
        }
    }

    fn event(ty: EventType, kind: Kind, object: Object, rev: u64) -> Event {
        Event {
            r#type: ty as i32,
            revision: rev,
            kind: kind as i32,
            object: Some(object),
        }
    }

    fn resync(rev: u64, objects: Vec<Object>) -> WatchResponse {
        WatchResponse {
            revision: rev,
            resync: true,
            objects,
            events: vec![],
        }
    }

    fn events(rev: u64, events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            revision: rev,
            resync: false,
            objects: vec![],
            events,
        }
    }

    #[test]
    fn resync_replaces_everything() {
        let mut r = Replica::new();
        assert!(!r.is_synced());
        assert_eq!(
            r.apply(&resync(
                5,
                vec![host("h", "10.0.0.1/24", 1), route("a", "10.9.0.0/16", 5)]
            )),
            Applied::Changed
        );
        assert!(r.is_synced());
        assert_eq!(r.revision(), 5);
        assert_eq!(r.objects().len(), 2);
        assert!(r.get(Kind::Route, "a").is_some());
        // A later full state without the route: it is gone.
        assert_eq!(
            r.apply(&resync(9, vec![host("h", "10.0.0.1/24", 1)])),
            Applied::Changed
        );
        assert_eq!(r.revision(), 9);
        assert!(r.get(Kind::Route, "a").is_none());
        // The same state again at a later revision: progress only.
        assert_eq!(
            r.apply(&resync(10, vec![host("h", "10.0.0.1/24", 1)])),
            Applied::Progress
        );
        // An older full state is ignored.
        assert_eq!(r.apply(&resync(3, vec![])), Applied::Ignored);
        assert_eq!(r.objects().len(), 1);
        assert_eq!(r.revision(), 10);
    }

    #[test]
    fn an_empty_first_resync_is_a_change() {
        let mut r = Replica::new();
        assert_eq!(r.apply(&resync(0, vec![])), Applied::Changed);
        assert!(r.is_synced());
    }

    #[test]
    fn events_put_replace_and_delete() {
        let mut r = Replica::new();
        r.apply(&resync(2, vec![host("h", "10.0.0.1/24", 1)]));
        let msg = events(
            4,
            vec![
                event(EventType::Put, Kind::Route, route("a", "10.9.0.0/16", 3), 3),
                event(EventType::Put, Kind::Host, host("h", "10.0.0.5/24", 4), 4),
            ],
        );
        assert_eq!(r.apply(&msg), Applied::Changed);
        assert_eq!(r.revision(), 4);
        assert_eq!(r.get(Kind::Host, "h"), Some(&host("h", "10.0.0.5/24", 4)));
        assert!(r.get(Kind::Route, "a").is_some());
        let del = events(
            6,
            vec![event(
                EventType::Delete,
                Kind::Route,
                route("a", "10.9.0.0/16", 3),
                6,
            )],
        );
        assert_eq!(r.apply(&del), Applied::Changed);
        assert!(r.get(Kind::Route, "a").is_none());
        assert_eq!(r.revision(), 6);
        // Deleting what is not there changes nothing but the revision.
        let del2 = events(
            7,
            vec![event(
                EventType::Delete,
                Kind::Route,
                route("zz", "10.8.0.0/16", 3),
                7,
            )],
        );
        assert_eq!(r.apply(&del2), Applied::Progress);
        assert_eq!(r.revision(), 7);
    }

    #[test]
    fn messages_not_newer_are_ignored() {
        let mut r = Replica::new();
        r.apply(&resync(5, vec![host("h", "10.0.0.1/24", 1)]));
        // A replayed event (revision 4 <= 5) does not resurrect anything.
        let old = events(
            5,
            vec![event(
                EventType::Put,
                Kind::Route,
                route("a", "10.9.0.0/16", 4),
                4,
            )],
        );
        assert_eq!(r.apply(&old), Applied::Ignored);
        assert!(r.get(Kind::Route, "a").is_none());
        assert_eq!(r.revision(), 5);
        // An older progress message is ignored too.
        assert_eq!(r.apply(&events(3, vec![])), Applied::Ignored);
        assert_eq!(r.revision(), 5);
        // A newer progress message moves the revision only.
        assert_eq!(r.apply(&events(8, vec![])), Applied::Progress);
        assert_eq!(r.revision(), 8);
        // A batch mixing replayed and new events applies only the new ones.
        let mixed = events(
            10,
            vec![
                event(
                    EventType::Delete,
                    Kind::Host,
                    host("h", "10.0.0.1/24", 1),
                    7,
                ),
                event(
                    EventType::Put,
                    Kind::Route,
                    route("b", "10.7.0.0/16", 10),
                    10,
                ),
            ],
        );
        assert_eq!(r.apply(&mixed), Applied::Changed);
        assert!(r.get(Kind::Host, "h").is_some());
        assert!(r.get(Kind::Route, "b").is_some());
        assert_eq!(r.revision(), 10);
    }

    #[test]
    fn chunked_batches_complete_at_their_own_revision() {
        // The server splits big batches; each chunk says how far it is complete, and the
        // events of revision 3 straddle the two chunks here.
        let mut r = Replica::new();
        r.apply(&resync(1, vec![]));
        let first = events(
            2,
            vec![
                event(EventType::Put, Kind::Route, route("a", "10.1.0.0/16", 2), 2),
                event(EventType::Put, Kind::Route, route("b", "10.2.0.0/16", 3), 3),
            ],
        );
        assert_eq!(r.apply(&first), Applied::Changed);
        assert_eq!(r.revision(), 2);
        let second = events(
            3,
            vec![event(
                EventType::Put,
                Kind::Route,
                route("c", "10.3.0.0/16", 3),
                3,
            )],
        );
        assert_eq!(r.apply(&second), Applied::Changed);
        assert_eq!(r.revision(), 3);
        assert_eq!(r.objects().len(), 3);
    }
}
