//! The Raft log and vote of a cluster node, in the same sled Db as the chain.
//!
//! pos-store does not know Raft's types: entries, the vote and log ids are
//! opaque bytes the cluster crate encodes. What it owns is durability: every
//! change here is flushed and synced to stable storage before the call
//! returns, because Raft may only be told "saved" about what a power cut
//! cannot take back (a vote that goes back elects two leaders in one term).

use crate::layout::{META_RAFT_APPLIED, RAFT_LOG};
use crate::store::{flatten, Store};
use crate::StoreError;
use pos_core::transition::{self, Outcome};
use pos_core::Command;
use sled::Transactional;

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
        self.sync_log()
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

    /// Appends entries `(index, bytes)`; durable when this returns.
    pub fn append_raft_log(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (index, entry) in entries {
            batch.insert(&index.to_be_bytes(), entry);
        }
        self.raft_log.apply_batch(batch)?;
        self.sync_log()
    }

    /// Entries with index in `from..to` (`to` exclusive), in order.
    pub fn raft_log(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.raft_log
            .range(from.to_be_bytes()..to.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((log_index(&k)?, v.to_vec()))
            })
            .collect()
    }

    /// The last entry of the log, if it holds any.
    pub fn last_raft_entry(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.raft_log.last()? {
            Some((k, v)) => Ok(Some((log_index(&k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    /// Removes every entry from `index` on (a conflicting suffix); durable on return.
    pub fn truncate_raft_log(&self, index: u64) -> Result<(), StoreError> {
        self.remove_raft_entries(self.raft_log.range(index.to_be_bytes()..))?;
        self.sync_log()
    }

    /// Removes every entry up to `index` and records `purged` (the id of
    /// entry `index`) first, so the log's start is never lost; durable on return.
    pub fn purge_raft_log(&self, index: u64, purged: &[u8]) -> Result<(), StoreError> {
        self.raft.insert(PURGED, purged)?;
        self.sync_log()?;
        self.remove_raft_entries(self.raft_log.range(..=index.to_be_bytes()))?;
        self.sync_log()
    }

    fn remove_raft_entries(&self, range: sled::Iter) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in range.keys() {
            batch.remove(key?);
        }
        Ok(self.raft_log.apply_batch(batch)?)
    }

    /// What the cluster recorded with the last entry it applied (its log
    /// id and membership), as it encoded it.
    pub fn raft_applied(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(META_RAFT_APPLIED)?.map(|v| v.to_vec()))
    }

    /// Applies one replicated entry: its commands in order, and `applied`
    /// (the entry's log id and membership) as the state machine's position,
    /// all in ONE transaction, so a crash never leaves half an entry applied
    /// or an entry applied without its position. Not durable until the
    /// next sync of the log or [`Store::flush`] (sled recovers its log as a
    /// prefix, so the state on disk is always the one after some entry).
    /// `Err` is the store failing, never a command refused.
    pub fn apply_entry(
        &self,
        commands: &[&Command],
        applied: &[u8],
    ) -> Result<Vec<Outcome>, StoreError> {
        self.trees()
            .transaction(|trees| {
                let state = Store::tx_state(trees);
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

    /// Makes the log and everything applied so far durable, without
    /// touching the acknowledgement record (the log is not chain state).
    fn sync_log(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(disk) = &self.disk {
            disk.files.sync()?;
        }
        Ok(())
    }
}

fn log_index(key: &[u8]) -> Result<u64, StoreError> {
    crate::codec::u64_value(RAFT_LOG, key)
}
