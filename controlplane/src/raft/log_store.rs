//! The durable Raft log: entries, the vote and the committed id in one redb database file.
//! Every append is one fsynced transaction before openraft is told it is flushed, so an
//! acknowledged write survives `kill -9`.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogState, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableTable, TableDefinition};

use super::types::{LogId, NodeId, StorageError, TypeConfig};

/// Log entries by index, JSON-encoded.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Vote, committed id and last purged id, JSON-encoded.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// The log store of one node.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens the log in `db` (shared with the state machine's snapshot store).
    pub fn open(db: Arc<Database>) -> Result<Self, redb::Error> {
        let tx = db.begin_write()?;
        tx.open_table(LOGS)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open_database(path: &Path) -> Result<Arc<Database>, redb::Error> {
        Ok(Arc::new(Database::create(path)?))
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let io = |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::read(anyerr(e)));
        let tx = self.db.begin_read().map_err(|e| io(&e))?;
        let table = tx.open_table(META).map_err(|e| io(&e))?;
        let Some(v) = table.get(key).map_err(|e| io(&e))? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| io(&e))
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let io = |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::write(anyerr(e)));
        let bytes = serde_json::to_vec(value).map_err(|e| io(&e))?;
        let tx = self.db.begin_write().map_err(|e| io(&e))?;
        {
            let mut table = tx.open_table(META).map_err(|e| io(&e))?;
            table.insert(key, bytes.as_slice()).map_err(|e| io(&e))?;
        }
        tx.commit().map_err(|e| io(&e))
    }

    fn entries<RB: RangeBounds<u64>>(
        &self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let io =
            |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::read_logs(anyerr(e)));
        let tx = self.db.begin_read().map_err(|e| io(&e))?;
        let table = tx.open_table(LOGS).map_err(|e| io(&e))?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(|e| io(&e))? {
            let (_, v) = item.map_err(|e| io(&e))?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| io(&e))?);
        }
        Ok(out)
    }
}

/// An error message as openraft's error source.
fn anyerr(e: &dyn std::fmt::Display) -> openraft::AnyError {
    openraft::AnyError::error(e.to_string())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let this = self.clone();
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        tokio::task::spawn_blocking(move || this.entries(range))
            .await
            .map_err(|e| StorageIOError::read_logs(anyerr(&e)))?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(KEY_PURGED)?;
        let io =
            |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::read_logs(anyerr(e)));
        let last = {
            let tx = self.db.begin_read().map_err(|e| io(&e))?;
            let table = tx.open_table(LOGS).map_err(|e| io(&e))?;
            let last = table.last().map_err(|e| io(&e))?;
            match last {
                Some((_, v)) => {
                    let entry: Entry<TypeConfig> =
                        serde_json::from_slice(v.value()).map_err(|e| io(&e))?;
                    Some(entry.log_id)
                }
                None => None,
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let this = self.clone();
        let vote = *vote;
        tokio::task::spawn_blocking(move || this.write_meta(KEY_VOTE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(anyerr(&e)))?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_meta(KEY_COMMITTED, &committed))
            .await
            .map_err(|e| StorageIOError::write(anyerr(&e)))?
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let io =
            |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::write_logs(anyerr(e)));
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((
                entry.log_id.index,
                serde_json::to_vec(&entry).map_err(|e| io(&e))?,
            ));
        }
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(LOGS)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| io(&e))?;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let io =
            |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::write_logs(anyerr(e)));
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(LOGS)?;
                table.retain_in(log_id.index.., |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| io(&e))?
        .map_err(|e| io(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let io =
            |e: &dyn std::fmt::Display| StorageError::from(StorageIOError::write_logs(anyerr(e)));
        let db = self.db.clone();
        let purged = serde_json::to_vec(&Some(log_id)).map_err(|e| io(&e))?;
        tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut meta = tx.open_table(META)?;
                meta.insert(KEY_PURGED, purged.as_slice())?;
                let mut table = tx.open_table(LOGS)?;
                table.retain_in(..=log_id.index, |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| io(&e))?
        .map_err(|e| io(&e))
    }
}
