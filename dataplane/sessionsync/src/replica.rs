//! The backup's copy of the master's sessions, as the stream delivers them, and (when
//! journaled) the list of changes it went through, so a backup can mirror them into its
//! NAT tables as they arrive instead of all at once when it takes over.

use std::collections::BTreeMap;

use crate::wire::{Op, Record, SessionKey};

/// One change of a journaled replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The session was added or changed: this is it now.
    Upsert(Record),
    /// The session is gone.
    Remove(SessionKey),
}

/// Sessions by key (the last add or update of each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    sessions: BTreeMap<SessionKey, Record>,
    journal: Option<Vec<Change>>,
}

impl Replica {
    /// An empty replica.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// An empty replica that also records every change ([`Replica::take_changes`]).
    pub fn journaled() -> Replica {
        Replica {
            sessions: BTreeMap::new(),
            journal: Some(Vec::new()),
        }
    }

    /// The changes since the last call, oldest first (none unless journaled).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Applies one event: add and update store it, delete removes it.
    pub fn apply(&mut self, r: &Record) {
        match r.op {
            Op::Add | Op::Update => {
                self.sessions.insert(r.key, *r);
                if let Some(j) = &mut self.journal {
                    j.push(Change::Upsert(*r));
                }
            }
            Op::Delete => {
                let was = self.sessions.remove(&r.key).is_some();
                if let (true, Some(j)) = (was, &mut self.journal) {
                    j.push(Change::Remove(r.key));
                }
            }
        }
    }

    /// Keeps the sessions `keep` accepts; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&SessionKey) -> bool) -> usize {
        let before = self.sessions.len();
        let journal = &mut self.journal;
        self.sessions.retain(|k, _| {
            let stay = keep(k);
            if let (false, Some(j)) = (stay, journal.as_mut()) {
                j.push(Change::Remove(*k));
            }
            stay
        });
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::NatKind;

    fn rec(op: Op, port: u16) -> Record {
        Record {
            op,
            key: SessionKey {
                vpc: 0,
                proto: 6,
                inside_ip: Ipv4Addr::new(10, 0, 0, 1),
                inside_port: port,
                remote_ip: Ipv4Addr::new(192, 0, 2, 1),
                remote_port: 80,
            },
            nat: NatKind::SnatEndpointDependent,
            outside_ip: Ipv4Addr::new(198, 51, 100, 1),
            outside_port: port,
            state: 2,
            expires_in_ms: 1000,
        }
    }

    #[test]
    fn journal_lists_upserts_and_every_removal_once() {
        let mut r = Replica::journaled();
        r.apply(&rec(Op::Add, 1));
        r.apply(&rec(Op::Add, 2));
        r.apply(&rec(Op::Update, 2));
        r.apply(&rec(Op::Delete, 1));
        // Deleting what is not there is no change.
        r.apply(&rec(Op::Delete, 7));
        assert_eq!(r.retain(|k| k.inside_port != 2), 1);
        let c = r.take_changes();
        assert_eq!(
            c,
            vec![
                Change::Upsert(rec(Op::Add, 1)),
                Change::Upsert(rec(Op::Add, 2)),
                Change::Upsert(rec(Op::Update, 2)),
                Change::Remove(rec(Op::Add, 1).key),
                Change::Remove(rec(Op::Add, 2).key),
            ]
        );
        assert!(r.take_changes().is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn a_plain_replica_keeps_no_journal() {
        let mut r = Replica::new();
        r.apply(&rec(Op::Add, 1));
        assert!(r.take_changes().is_empty());
        assert_eq!(r.len(), 1);
    }
}
