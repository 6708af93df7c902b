//! A cluster node's Raft vote and bookkeeping, in the same sled Db as the
//! chain; the log itself is in its own files ([`RaftLog`]).
//!
//! pos-store does not know Raft's types: entries, the vote and log ids are
//! opaque bytes the cluster crate encodes. What it owns is durability: every
//! change here but the committed hint is flushed and synced to stable
//! storage before the call returns, because Raft may only be told "saved"
//! about what a power cut cannot take back (a vote that goes back elects two
//! leaders in one term).

use crate::layout::{META_RAFT_APPLIED, RAFT_LOG};
use crate::raft_log::{self, RaftLog};
use crate::store::{flatten, Store};
use crate::sync::{io_err, sync_path};
use crate::StoreError;
use pos_core::transition::{self, Outcome};
use pos_core::Command;

/// Keys of the [`RAFT`] tree.
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

impl Store {
    /// The saved vote, as the cluster encoded it.
    pub fn raft_vote(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.raft_value(VOTE)
    }

    /// Saves the vote; durable when this returns.
    pub fn save_raft_vote(&self, vote: &[u8]) -> Result<(), StoreError> {
        self.raft.insert(VOTE, vote)?;
        self.sync_sled()
    }

    /// The last committed log id the cluster saved (a hint: Raft recomputes it).
    pub fn raft_committed(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.raft_value(COMMITTED)
    }

    /// Saves the committed log id. Not synced: losing it only costs Raft a
    /// little re-replication, never correctness.
    pub fn save_raft_committed(&self, committed: &[u8]) -> Result<(), StoreError> {
        self.raft.insert(COMMITTED, committed)?;
        Ok(())
    }

    /// The id of the last log entry purged (dropped after a snapshot).
    pub fn raft_purged(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.raft_value(PURGED)
    }

    fn raft_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.raft.get(key)?.map(|v| v.to_vec()))
    }

    /// Records `purged` (the id of the last entry a purge of the log drops)
    /// before the log drops anything, so the log's start is never lost;
    /// durable on return. It syncs the applied state too: the entries
    /// dropped next can no longer be re-applied after a crash.
    pub fn save_raft_purged(&self, purged: &[u8]) -> Result<(), StoreError> {
        self.raft.insert(PURGED, purged)?;
        self.sync_sled()
    }

    /// Opens this node's Raft log (`raft-log/` in the data directory). A
    /// store from before the log had its own files keeps it in sled: it is
    /// copied out first (into `raft-log.new`, synced, then renamed), and
    /// only then removed from sled, so a crash at any point loses nothing.
    pub fn open_raft_log(&self) -> Result<RaftLog, StoreError> {
        let Some(disk) = &self.disk else {
            return Err(StoreError::Invalid(
                "a temporary store has no Raft log".into(),
            ));
        };
        let dir = disk.dir.join(raft_log::DIR);
        if !dir.exists() {
            let new = disk.dir.join(raft_log::DIR_NEW);
            if new.exists() {
                std::fs::remove_dir_all(&new).map_err(io_err(&new))?;
            }
            let log = RaftLog::open(&new)?;
            let mut chunk = Vec::new();
            for kv in self.raft_log.iter() {
                let (k, v) = kv?;
                chunk.push((log_index(&k)?, v.to_vec()));
                if chunk.len() == 1024 {
                    log.append(std::mem::take(&mut chunk))?;
                }
            }
            log.append(chunk)?;
            drop(log);
            std::fs::rename(&new, &dir).map_err(io_err(&new))?;
            sync_path(&disk.dir)?;
        }
        if !self.raft_log.is_empty() {
            self.raft_log.clear()?;
            self.sync_sled()?;
        }
        RaftLog::open(&dir)
    }

    /// What the cluster recorded with the last entry it applied (its log
    /// id and membership), as it encoded it.
    pub fn raft_applied(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(META_RAFT_APPLIED)?.map(|v| v.to_vec()))
    }

    /// Applies one replicated entry: its commands in order, and `applied`
    /// (the entry's log id and membership) as the state machine's position,
    /// all in ONE transaction, so a crash never leaves half an entry applied
    /// or an entry applied without its position. Not durable until sled is
    /// next synced (a vote, a purge, or [`Store::flush`]); sled recovers its
    /// log as a prefix, so the state on disk is always the one after some
    /// entry, and the Raft log holds the entries after it.
    /// `Err` is the store failing, never a command refused.
    pub fn apply_entry(
        &self,
        commands: &[&Command],
        applied: &[u8],
    ) -> Result<Vec<Outcome>, StoreError> {
        let prepared = self.prepare_rounds(commands)?;
        self.trees()
            .transaction(|trees| {
                let state = self.tx_state(trees, &prepared);
                let mut outcomes = Vec::with_capacity(commands.len());
                for cmd in commands {
                    outcomes.push(transition::apply(&state, cmd)?);
                    state.bump_applied()?;
                }
                state.meta.insert(META_RAFT_APPLIED, applied)?;
                Ok(outcomes)
            })
            .map_err(flatten)
    }
}

fn log_index(key: &[u8]) -> Result<u64, StoreError> {
    crate::codec::u64_value(RAFT_LOG, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::ChainSpec;

    #[test]
    fn an_older_stores_log_moves_out_of_sled_whole() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(u64, Vec<u8>)> = (5..2100).map(|i| (i, vec![i as u8; 40])).collect();
        {
            // As a store before round 3 kept it: in sled, keyed by index.
            let store = Store::open(dir.path(), &ChainSpec::default()).unwrap();
            for (i, e) in &entries {
                store
                    .raft_log
                    .insert(i.to_be_bytes(), e.as_slice())
                    .unwrap();
            }
            store.flush().unwrap();
            // A copy left by a crash in the middle of an earlier move.
            std::fs::create_dir(dir.path().join(raft_log::DIR_NEW)).unwrap();
            std::fs::write(dir.path().join(raft_log::DIR_NEW).join("junk"), b"x").unwrap();
        }
        let store = Store::open(dir.path(), &ChainSpec::default()).unwrap();
        let log = store.open_raft_log().unwrap();
        assert_eq!(log.read(0, u64::MAX).unwrap(), entries);
        assert!(store.raft_log.is_empty());
        assert!(!dir.path().join(raft_log::DIR_NEW).exists());
        log.append([(2100, b"next".to_vec())]).unwrap();
        drop((log, store));
        let store = Store::open(dir.path(), &ChainSpec::default()).unwrap();
        let log = store.open_raft_log().unwrap();
        assert_eq!(log.read(2099, 2101).unwrap().len(), 2);
        assert_eq!(log.last().unwrap(), Some((2100, b"next".to_vec())));
    }
}
