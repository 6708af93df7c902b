//! The Raft log and vote over pos-store: the log in its own append-only
//! files ([`RaftLog`]), the vote in the store. Every write is on stable
//! storage before openraft hears of it: `append` calls back only after the
//! sync, `save_vote` returns only after it (CLUSTER-NOTES: the way Raft
//! systems lose data is to say "saved" early). The newest entries are also
//! kept in memory ([`Recent`]): openraft reads each one back at once, to
//! replicate it and to apply it.

use crate::recent::Recent;
use crate::types::{decode, encode, Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader};
use pos_store::{RaftLog, Store, StoreError};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

/// Cheap to clone: openraft asks for separate readers (they share
/// [`Recent`]).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    log: Arc<RaftLog>,
    recent: Arc<Mutex<Recent>>,
}

impl LogStore {
    /// Opens the store's Raft log (moving an older store's out of sled),
    /// with what was purged dropped again.
    pub fn open(store: Arc<Store>) -> Result<Self, StorageError> {
        let failed = |e| io_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let log = store.open_raft_log().map_err(failed)?;
        if log.cut_at_open() > 0 {
            tracing::warn!(
                bytes = log.cut_at_open(),
                "the Raft log's last append was torn (posd stopped mid-write, a power cut): \
                 cut off; it was never acknowledged, and the leader sends it again"
            );
        }
        let purged: Option<LogId> =
            decoded(ErrorSubject::Logs, store.raft_purged().map_err(failed)?)?;
        if let Some(purged) = purged {
            log.purge(purged.index)
                .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        }
        Ok(LogStore {
            log: Arc::new(log),
            store,
            recent: Arc::default(),
        })
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs blocking store IO without blocking the runtime's other tasks.
    async fn blocking<T: Send + 'static>(
        &self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
        f: impl FnOnce(&Store, &RaftLog) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (store, log) = (Arc::clone(&self.store), Arc::clone(&self.log));
        crate::blocking::run(move || f(&store, &log))
            .await
            .map_err(|e| io_error(subject.clone(), verb, e))?
            .map_err(|e| io_error(subject, verb, e))
    }
}

pub(crate) fn io_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn corrupt(subject: ErrorSubject<u64>, e: bincode::error::DecodeError) -> StorageError {
    io_error(subject, ErrorVerb::Read, e)
}

fn decoded<T: serde::de::DeserializeOwned>(
    subject: ErrorSubject<u64>,
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, StorageError> {
    bytes
        .map(|b| decode(&b).map_err(|e| corrupt(subject, e)))
        .transpose()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(entries) = self.recent().read(from, to) {
            return Ok(entries);
        }
        let raw = self
            .blocking(ErrorSubject::Logs, ErrorVerb::Read, move |_, log| {
                log.read(from, to)
            })
            .await?;
        raw.into_iter()
            .map(|(index, bytes)| {
                decode(&bytes).map_err(|e| corrupt(ErrorSubject::LogIndex(index), e))
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (purged, last) = self
            .blocking(ErrorSubject::Logs, ErrorVerb::Read, |s, log| {
                Ok((s.raft_purged()?, log.last()?))
            })
            .await?;
        let last_purged_log_id: Option<LogId> = decoded(ErrorSubject::Logs, purged)?;
        let last_entry: Option<Entry> = decoded(ErrorSubject::Logs, last.map(|(_, e)| e))?;
        let last_log_id = last_entry.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = encode(vote);
        self.blocking(ErrorSubject::Vote, ErrorVerb::Write, move |s, _| {
            s.save_raft_vote(&bytes)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let bytes = self
            .blocking(ErrorSubject::Vote, ErrorVerb::Read, |s, _| s.raft_vote())
            .await?;
        decoded(ErrorSubject::Vote, bytes)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced (pos-store): no IO to wait for, so no thread hand-off.
        self.store
            .save_raft_committed(&encode(&committed))
            .map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let bytes = self
            .blocking(ErrorSubject::Store, ErrorVerb::Read, |s, _| {
                s.raft_committed()
            })
            .await?;
        Ok(decoded::<Option<LogId>>(ErrorSubject::Store, bytes)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut kept = Vec::new();
        let mut encoded = Vec::new();
        for e in entries {
            let (index, bytes) = (e.log_id.index, encode(&e));
            kept.push((e, bytes.len()));
            encoded.push((index, bytes));
        }
        let result = self
            .blocking(ErrorSubject::Logs, ErrorVerb::Write, move |_, log| {
                log.append(encoded)
            })
            .await;
        // Synced (or failed) by now: only then may openraft count the entries.
        match &result {
            Ok(()) => {
                self.recent().appended(kept);
                callback.log_io_completed(Ok(()));
            }
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // First: no reader may take a removed entry from here meanwhile.
        self.recent().truncated(log_id.index);
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |_, log| {
            log.truncate(log_id.index)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = encode(&log_id);
        self.recent().purged(log_id.index);
        self.blocking(ErrorSubject::Logs, ErrorVerb::Delete, move |s, log| {
            s.save_raft_purged(&bytes)?;
            log.purge(log_id.index)
        })
        .await
    }
}

/// The index of the last entry the node saved as committed (0 if none).
pub fn committed_index(store: &Store) -> u64 {
    let saved = store.raft_committed().ok().flatten();
    let decoded: Option<Option<LogId>> = saved.and_then(|b| decode(&b).ok());
    decoded.flatten().map_or(0, |l| l.index)
}
