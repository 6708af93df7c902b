//! The state machine: a committed entry is applied by the store's one
//! transition (pos-core), in one transaction with the entry's log id, then
//! handed to posd's [`Observer`], which answers and announces. Nothing is
//! announced before it is on stable storage: an entry is applied
//! only once committed, that is synced in the Raft logs of a majority, so
//! the log is the write-ahead log (as in etcd and TiKV) and the apply does
//! not sync on its own. The state on disk is always the one after some
//! entry, with that entry's log id beside it (one transaction; sled
//! recovers a prefix); after a crash openraft re-applies the entries past
//! it from the log. The state is synced, and the acknowledgement record
//! written, at most every [`SYNC_EVERY`], so that record trails the state
//! by about that much (docs/CLUSTER.md, "Durability"). A second copy of an
//! op (same origin) is skipped: see [`crate::dedup`].
//!
//! Snapshots are posd's export format (docs/EXPORT.md), streamed through a
//! file in `<data_dir>/snapshots`, so a joining node receives the chain the
//! way `posd import` reads one, every hash, link and draw checked.

use crate::dedup;
use crate::log_store::io_error;
use crate::types::{decode, encode};
use crate::types::{
    Batch, Entry, LogId, Membership, Op, SnapshotMeta, StorageError, Tagged, TypeConfig,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use pos_core::transition::Outcome;
use pos_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an apply also syncs the state and writes the acknowledgement
/// record: what a node checks at start, in place of every acknowledged write
/// (those are in the synced log).
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What posd does with each applied entry (on every node, leader included):
/// update the round's pending proposals, announce, answer waiting clients.
/// Called in log order, after the entry is durable.
pub trait Observer: Send + Sync + 'static {
    fn applied(&self, index: u64, ops: &[Tagged], outcomes: &[Option<Outcome>]);
    /// The whole state was replaced by a snapshot from the leader.
    fn restored(&self);
}

/// Where the state machine stands: the last applied entry and the
/// membership in force. Written with every entry, in its transaction.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    last_applied: Option<LogId>,
    membership: Membership,
}

#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    observer: Arc<dyn Observer>,
    snapshots: PathBuf,
    /// Held while applying and while exporting: sled has no point-in-time
    /// reads, so a snapshot is consistent only if nothing applies meanwhile.
    /// Holds when an apply last synced the state.
    exclusive: Arc<Mutex<Instant>>,
}

impl StateMachine {
    /// `data_dir` is the store's directory; snapshots live in its `snapshots/`.
    pub fn new(store: Arc<Store>, data_dir: &Path, observer: Arc<dyn Observer>) -> Self {
        StateMachine {
            store,
            observer,
            snapshots: data_dir.join("snapshots"),
            exclusive: Arc::new(Mutex::new(Instant::now())),
        }
    }

    fn position(store: &Store) -> Result<Position, StorageError> {
        StateMachine::applied(store).map(|(position, _)| position)
    }

    /// The position and the tickets applied, as [`encode_applied`] wrote them.
    fn applied(store: &Store) -> Result<(Position, dedup::Applied), StorageError> {
        let bytes = store
            .raft_applied()
            .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        match bytes {
            None => Ok(Default::default()),
            Some(b) => decode_applied(&b)
                .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e)),
        }
    }

    /// The state at one point between two applies, and where that point is
    /// in the log: entries are held off only while validators are copied.
    fn take_snapshot(&self) -> Result<(Position, pos_store::export::Snapshot), StoreError> {
        let _only = self.exclusive.lock().unwrap_or_else(|e| e.into_inner());
        let position =
            StateMachine::position(&self.store).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok((position, self.store.snapshot(None)?))
    }

    /// A consistent snapshot of the state for `posctl export` and `backup`.
    pub fn export_snapshot(&self) -> Result<pos_store::export::Snapshot, StoreError> {
        self.take_snapshot().map(|(_, state)| state)
    }

    fn current_path(&self) -> PathBuf {
        self.snapshots.join("current.jsonl")
    }

    fn meta_path(&self) -> PathBuf {
        self.snapshots.join("current.meta")
    }
}

/// The position, then the tickets applied: a data dir from before tickets
/// were recorded holds the position alone, and reads as no ticket applied.
fn encode_applied(position: &Position, tickets: &dedup::Applied) -> Vec<u8> {
    encode(&(position, tickets))
}

fn decode_applied(bytes: &[u8]) -> Result<(Position, dedup::Applied), bincode::error::DecodeError> {
    let config = bincode::config::standard();
    let (position, read) = bincode::serde::decode_from_slice(bytes, config)?;
    let tickets = match &bytes[read..] {
        [] => dedup::Applied::default(),
        rest => decode(rest)?,
    };
    Ok((position, tickets))
}

/// Applies entries in order: each in its own transaction with its position
/// and the tickets applied, then the observer hears of each (the first copy
/// of each op only). `sync`: also make the state durable and record it as
/// acknowledged; otherwise the synced log stands for it.
fn apply_all(
    store: &Store,
    observer: &dyn Observer,
    (mut position, mut tickets): (Position, dedup::Applied),
    entries: Vec<Entry>,
    sync: bool,
) -> Result<Vec<()>, StoreError> {
    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries {
        position.last_applied = Some(entry.log_id);
        let ops = match entry.payload {
            EntryPayload::Blank => Vec::new(),
            EntryPayload::Normal(Batch { mut ops }) => {
                ops.retain(|t| tickets.first(t.origin));
                ops
            }
            EntryPayload::Membership(m) => {
                position.membership = Membership::new(Some(entry.log_id), m);
                Vec::new()
            }
        };
        let commands: Vec<_> = ops
            .iter()
            .filter_map(|t| match &t.op {
                Op::Command(c) => Some(c),
                _ => None,
            })
            .collect();
        let mut results = store
            .apply_entry(&commands, &encode_applied(&position, &tickets))?
            .into_iter();
        let outcomes: Vec<Option<Outcome>> = ops
            .iter()
            .map(|t| match t.op {
                Op::Command(_) => results.next(),
                _ => None,
            })
            .collect();
        applied.push((entry.log_id.index, ops, outcomes));
    }
    if sync {
        store.flush()?;
    } else {
        store.durable_in_log()?;
    }
    Ok(applied
        .into_iter()
        .map(|(index, ops, outcomes)| observer.applied(index, &ops, &outcomes))
        .collect())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let p = StateMachine::position(&self.store)?;
        Ok((p.last_applied, p.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        crate::blocking::run(move || {
            let mut synced = this.exclusive.lock().unwrap_or_else(|e| e.into_inner());
            let sync = synced.elapsed() >= SYNC_EVERY;
            if sync {
                *synced = Instant::now();
            }
            let applied = StateMachine::applied(&this.store)?;
            apply_all(&this.store, &*this.observer, applied, entries, sync)
                .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))
        })
        .await
        .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let dir = self.snapshots.clone();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join("receiving.jsonl"))
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let file = snapshot.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        let installed = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            use std::io::{Seek, SeekFrom};
            let _only = this.exclusive.lock().unwrap_or_else(|e| e.into_inner());
            // Kept as the current snapshot first: this node may serve it on.
            let mut file = file;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| io(&this.snapshots, e))?;
            let copy = this.snapshots.join("installing.jsonl");
            let mut out = std::fs::File::create(&copy).map_err(|e| io(&copy, e))?;
            std::io::copy(&mut file, &mut out).map_err(|e| io(&copy, e))?;
            out.sync_all().map_err(|e| io(&copy, e))?;
            std::fs::rename(&copy, this.current_path()).map_err(|e| io(&copy, e))?;
            write_synced(&this.meta_path(), &encode(&meta))?;
            let path = this.current_path();
            let reader =
                std::io::BufReader::new(std::fs::File::open(&path).map_err(|e| io(&path, e))?);
            let position = Position {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
            this.store.restore_snapshot(reader, &encode(&position))?;
            this.observer.restored();
            Ok(())
        })
        .await
        .map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        installed.map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let (meta_path, path) = (self.meta_path(), self.current_path());
        let found = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let meta = match std::fs::read(&meta_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(&meta_path, e)),
            };
            let meta: SnapshotMeta = decode(&meta).map_err(|e| StoreError::Corrupt {
                tree: "snapshots",
                detail: format!("{}: {e}", meta_path.display()),
            })?;
            let file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            Ok(Some((meta, file)))
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(found.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            std::fs::create_dir_all(&this.snapshots).map_err(|e| io(&this.snapshots, e))?;
            let building = this.snapshots.join("building.jsonl");
            let (position, state) = this.take_snapshot()?;
            // Written while entries apply again: the snapshot holds its point.
            let file = std::fs::File::create(&building).map_err(|e| io(&building, e))?;
            let mut out = std::io::BufWriter::new(file);
            state.write(&mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| io(&building, e.into_error()))?;
            file.sync_all().map_err(|e| io(&building, e))?;
            let index = position.last_applied.map_or(0, |l| l.index);
            let meta = SnapshotMeta {
                last_log_id: position.last_applied,
                last_membership: position.membership,
                snapshot_id: format!("{index}-{:016x}", rand::random::<u64>()),
            };
            std::fs::rename(&building, this.current_path()).map_err(|e| io(&building, e))?;
            write_synced(&this.meta_path(), &encode(&meta))?;
            let file = std::fs::File::open(this.current_path()).map_err(|e| io(&building, e))?;
            Ok((meta, file))
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        let (meta, file) = built;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

fn io(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Origin;

    #[test]
    fn a_position_from_before_tickets_reads_as_none_applied() {
        let position = Position::default();
        let (_, tickets) = decode_applied(&encode(&position)).unwrap();
        assert_eq!(tickets, dedup::Applied::default());

        let mut tickets = dedup::Applied::default();
        assert!(tickets.first(Origin { node: 2, ticket: 9 }));
        let (_, mut read) = decode_applied(&encode_applied(&position, &tickets)).unwrap();
        assert_eq!(read, tickets);
        assert!(!read.first(Origin { node: 2, ticket: 9 }));
    }
}
