//! The newest entries of the log, kept as appended.
//!
//! What openraft reads back from the log is nearly always what it appended
//! a millisecond before: the leader's replication streams read each new
//! entry to send it, and every node's core reads it again to apply it once
//! committed. Served from here, those reads take neither a store read and
//! decode nor a thread hand-off. The entries held are always a suffix of
//! the log on disk: added only once synced there, dropped with what
//! truncation or purging removes; a read starting before them goes to the
//! store.

use crate::types::Entry;
use std::collections::VecDeque;

/// Most entries kept.
const ENTRIES: usize = 64;
/// Most encoded bytes kept (a round's entry with 10,000 candidates is ~0.5 MB).
const BYTES: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct Recent {
    /// Consecutive indexes, each with its encoded size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Recent {
    /// Entries `(entry, encoded size)` just synced after the log's last.
    pub fn appended(&mut self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        for (entry, size) in entries {
            let index = entry.log_id.index;
            // Not the next index: what is held no longer joins it.
            if self.last().is_some_and(|last| last + 1 != index) {
                self.clear();
            }
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.entries.len() > ENTRIES || self.bytes > BYTES {
            self.pop_front();
        }
    }

    /// The log lost every entry from `index` on.
    pub fn truncated(&mut self, index: u64) {
        while self.last().is_some_and(|last| last >= index) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// The log lost every entry up to `index`.
    pub fn purged(&mut self, index: u64) {
        while self.first().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    /// The entries with index in `from..to`, if the ones held start at or
    /// before `from` (then they hold all of the log's from there).
    pub fn read(&self, from: u64, to: u64) -> Option<Vec<Entry>> {
        let first = self.first()?;
        if from < first {
            return None;
        }
        let skip = usize::try_from(from - first).unwrap_or(usize::MAX);
        let take = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
        Some(
            self.entries
                .iter()
                .skip(skip)
                .take(take)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }

    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LogId;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> (Entry, usize) {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
        let entry = Entry {
            log_id,
            payload: EntryPayload::Blank,
        };
        (entry, 100)
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn serves_a_suffix_and_sends_older_reads_to_the_store() {
        let mut recent = Recent::default();
        assert_eq!(indexes(recent.read(1, 2)), None);
        recent.appended((1..=ENTRIES as u64 + 10).map(entry));
        assert_eq!(
            indexes(recent.read(10, 12)),
            None,
            "dropped: older than the held"
        );
        assert_eq!(indexes(recent.read(11, 13)), Some(vec![11, 12]));
        let last = ENTRIES as u64 + 10;
        assert_eq!(indexes(recent.read(last, u64::MAX)), Some(vec![last]));
        assert_eq!(indexes(recent.read(last + 1, u64::MAX)), Some(vec![]));
    }

    #[test]
    fn follows_truncation_purging_and_a_gap() {
        let mut recent = Recent::default();
        recent.appended((1..=10).map(entry));
        recent.truncated(8);
        assert_eq!(indexes(recent.read(5, 100)), Some(vec![5, 6, 7]));
        recent.purged(5);
        assert_eq!(indexes(recent.read(5, 100)), None);
        assert_eq!(indexes(recent.read(6, 100)), Some(vec![6, 7]));
        // An append that does not follow the last held starts over.
        recent.appended([entry(20)]);
        assert_eq!(indexes(recent.read(6, 100)), None);
        assert_eq!(indexes(recent.read(20, 100)), Some(vec![20]));
        assert_eq!(recent.bytes, 100);
    }
}
