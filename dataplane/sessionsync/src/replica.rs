//! The backup's copy of the master's sessions, as the stream delivers them.

use std::collections::BTreeMap;

use crate::wire::{Op, Record, SessionKey};

/// Sessions by key (the last add or update of each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    sessions: BTreeMap<SessionKey, Record>,
}

impl Replica {
    /// An empty replica.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// Applies one event: add and update store it, delete removes it.
    pub fn apply(&mut self, r: &Record) {
        match r.op {
            Op::Add | Op::Update => {
                self.sessions.insert(r.key, *r);
            }
            Op::Delete => {
                self.sessions.remove(&r.key);
            }
        }
    }

    /// Keeps the sessions `keep` accepts; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&SessionKey) -> bool) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|k, _| keep(k));
        before - self.sessions.len()
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session with this key.
    pub fn get(&self, k: &SessionKey) -> Option<&Record> {
        self.sessions.get(k)
    }

    /// Every session, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.sessions.values()
    }

    /// True if both hold the same sessions with the same translation and state (the
    /// remaining timeouts are allowed to differ: they are re-stamped on every update).
    pub fn same_sessions(&self, other: &Replica) -> bool {
        self.sessions.len() == other.sessions.len()
            && self
                .sessions
                .iter()
                .zip(&other.sessions)
                .all(|((a, x), (b, y))| {
                    a == b
                        && x.nat == y.nat
                        && x.outside_ip == y.outside_ip
                        && x.outside_port == y.outside_port
                        && x.state == y.state
                })
    }
}
