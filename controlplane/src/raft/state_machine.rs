//! The state machine: applies committed log entries to the [`DesiredState`], keeps a bounded
//! history of changes for watchers, and builds, stores and installs snapshots. The state is
//! in memory; the last snapshot is kept in the node's database, and on start the state is
//! restored from it and openraft re-applies the committed log after it.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::types::{LogId, StorageError, StoredMembership, TypeConfig, WriteOutcome};
use crate::model::{Change, DesiredState};

/// The current snapshot: metadata and data, JSON-encoded.
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
const KEY_SNAPSHOT: &str = "current";

/// Default number of changes kept for watchers.
pub const DEFAULT_HISTORY: usize = 10_000;

/// What the state machine holds.
#[derive(Debug, Default)]
pub struct Machine {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership,
    /// The desired state.
    pub state: DesiredState,
    /// The most recent changes, oldest first; changes after `compacted` are all here.
    pub history: VecDeque<Arc<Change>>,
    /// Revision up to which the history has been dropped: a watcher from an older revision
    /// needs a full resync.
    pub compacted: u64,
    /// Changes kept.
    pub history_limit: usize,
}

impl Machine {
    /// Changes after `revision`, or `None` if some of them are no longer kept.
    pub fn changes_since(&self, revision: u64) -> Option<Vec<Arc<Change>>> {
        if revision < self.compacted {
            return None;
        }
        let start = self.history.partition_point(|c| c.revision <= revision);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    fn record(&mut self, change: Change) {
        self.history.push_back(Arc::new(change));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.revision;
            }
        }
    }
}

/// Shared, read-only access to the state machine for the API, watchers and status.
#[derive(Clone)]
pub struct MachineHandle {
    inner: Arc<RwLock<Machine>>,
    revision: watch::Receiver<u64>,
}

impl MachineHandle {
    /// Reads the machine.
    pub fn read(&self) -> RwLockReadGuard<'_, Machine> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever the revision does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }
}

/// The snapshot as stored and sent.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The state machine of one node.
pub struct StateMachine {
    inner: Arc<RwLock<Machine>>,
    revision: watch::Sender<u64>,
    db: Arc<Database>,
    snapshot_seq: u64,
}

fn anyerr(e: &dyn std::fmt::Display) -> openraft::AnyError {
    openraft::AnyError::error(e.to_string())
}

impl StateMachine {
    /// Opens the state machine, restoring the state from the stored snapshot if any.
    pub fn open(
        db: Arc<Database>,
        history_limit: usize,
    ) -> Result<(Self, MachineHandle), StorageError> {
        let mut machine = Machine {
            history_limit: history_limit.max(1),
            ..Machine::default()
        };
        if let Some(snap) = read_snapshot(&db)? {
            let state: DesiredState = serde_json::from_slice(&snap.data).map_err(|e| {
                StorageIOError::read_snapshot(Some(snap.meta.signature()), anyerr(&e))
            })?;
            machine.last_applied = snap.meta.last_log_id;
            machine.membership = snap.meta.last_membership.clone();
            machine.compacted = state.revision();
            machine.state = state;
        }
        let (tx, rx) = watch::channel(machine.state.revision());
        let inner = Arc::new(RwLock::new(machine));
        Ok((
            Self {
                inner: inner.clone(),
                revision: tx,
                db,
                snapshot_seq: 0,
            },
            MachineHandle {
                inner,
                revision: rx,
            },
        ))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Machine> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, StorageError> {
    let io = |e: &dyn std::fmt::Display| {
        StorageError::from(StorageIOError::read_snapshot(None, anyerr(e)))
    };
    let tx = db.begin_read().map_err(|e| io(&e))?;
    let table = match tx.open_table(SNAPSHOT) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io(&e)),
    };
    let Some(v) = table.get(KEY_SNAPSHOT).map_err(|e| io(&e))? else {
        return Ok(None);
    };
    serde_json::from_slice(v.value())
        .map(Some)
        .map_err(|e| io(&e))
}

fn write_snapshot(db: &Database, snap: &StoredSnapshot) -> Result<(), StorageError> {
    let io = |e: &dyn std::fmt::Display| {
        StorageError::from(StorageIOError::write_snapshot(
            Some(snap.meta.signature()),
            anyerr(e),
        ))
    };
    let bytes = serde_json::to_vec(snap).map_err(|e| io(&e))?;
    let tx = db.begin_write().map_err(|e| io(&e))?;
    {
        let mut table = tx.open_table(SNAPSHOT).map_err(|e| io(&e))?;
        table
            .insert(KEY_SNAPSHOT, bytes.as_slice())
            .map_err(|e| io(&e))?;
    }
    tx.commit().map_err(|e| io(&e))
}

/// Builds snapshots from a copy of the state taken under the lock.
pub struct SnapshotBuilder {
    inner: Arc<RwLock<Machine>>,
    db: Arc<Database>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (state, last_applied, membership) = {
            let m = self.inner.read().unwrap_or_else(|p| p.into_inner());
            (m.state.clone(), m.last_applied, m.membership.clone())
        };
        let data = serde_json::to_vec(&state)
            .map_err(|e| StorageIOError::write_state_machine(anyerr(&e)))?;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.seq),
            None => format!("empty-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let db = self.db.clone();
        let stored =
            tokio::task::spawn_blocking(move || write_snapshot(&db, &stored).map(|()| stored))
                .await
                .map_err(|e| StorageIOError::write_state_machine(anyerr(&e)))??;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let m = self.write();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<WriteOutcome>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let revision = {
            let mut m = self.write();
            for entry in entries {
                m.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => out.push(WriteOutcome(None)),
                    EntryPayload::Membership(mem) => {
                        m.membership = StoredMembership::new(Some(entry.log_id), mem);
                        out.push(WriteOutcome(None));
                    }
                    EntryPayload::Normal(command) => {
                        let result = m.state.apply(&command);
                        if let Ok(change) = &result {
                            m.record(change.clone());
                        }
                        out.push(WriteOutcome(Some(result)));
                    }
                }
            }
            m.state.revision()
        };
        self.revision.send_if_modified(|r| {
            let changed = *r != revision;
            *r = revision;
            changed
        });
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            inner: self.inner.clone(),
            db: self.db.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state: DesiredState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), anyerr(&e)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&db, &stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), anyerr(&e)))??;
        let revision = state.revision();
        {
            let mut m = self.write();
            m.last_applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            // Watchers behind this snapshot cannot be given the changes in between.
            m.history.clear();
            m.compacted = revision;
            m.state = state;
        }
        self.revision.send_replace(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let db = self.db.clone();
        let stored = tokio::task::spawn_blocking(move || read_snapshot(&db))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, anyerr(&e)))??;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
