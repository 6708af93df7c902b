//! Round records too big for sled's pages, in an append-only log of their own.
//!
//! sled writes any value over 128 KB (a round of ~3,500 candidates) to a
//! file of its own under `blobs/`, and rewrites a tree page whole once ten
//! changes are chained to it: the rounds tree's last leaf, holding up to 16
//! records of 10,000 candidates, went to disk as a 3 MB blob every few
//! rounds, inside those rounds' closes, and `blobs/` grew by a file a round
//! (docs/BENCHMARKS.md, round 3, sixth and seventh passes). So a record over
//! [`FILED_BYTES`] is appended here and synced before the transaction that
//! commits its block, and the [`ROUNDS`] tree holds only its head: where it
//! is, its length and its checksum. Smaller records stay in sled, byte for
//! byte as schema 2 wrote them.
//!
//! The log is a [`RaftLog`] numbered by a sequence of its own, so appends
//! never leave a gap. A record filed for a block that never committed (a
//! refused round, a crash before the transaction, a cluster entry applied
//! again after a crash) is never named by a head, so never read.

use crate::codec::{decode_round, encode_round};
use crate::layout::{ROUNDS, ROUND_LAYOUT_FILED};
use crate::raft_log::RaftLog;
use crate::sync::sync_path;
use crate::StoreError;
use pos_core::lottery::Anchor;
use pos_core::{Command, RoundRecord};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;

/// The log's directory in a data directory.
pub const DIR: &str = "round-log";

/// Records longer than this are filed (about 120 candidates): sixteen of
/// them, a leaf of the rounds tree, stay well under sled's 128 KB.
pub(crate) const FILED_BYTES: usize = 4 * 1024;

/// A filed record's head: the layout byte, its sequence number in the log
/// (`u64` BE), its length and its CRC-32 (`u32` BE each).
pub(crate) type Head = [u8; 17];

/// The open log of filed round records.
pub(crate) struct RoundLog {
    log: RaftLog,
    /// The sequence number the next record gets.
    next: Mutex<u64>,
}

impl RoundLog {
    /// Opens (or makes) the log in `data_dir`, its directory entry synced.
    /// The store names records up to `named`: a log that lost any of them
    /// is refused, and a damaged tail holding one is left as it is.
    pub(crate) fn open(data_dir: &Path, named: u64) -> Result<RoundLog, StoreError> {
        let dir = data_dir.join(DIR);
        let log = RaftLog::open_keeping(&dir, named)?;
        sync_path(data_dir)?;
        let next = log.next_index()?.unwrap_or(1);
        if next <= named {
            return Err(StoreError::Damaged {
                path: dir,
                detail: format!(
                    "it holds round records up to {}, but the store names record {named}",
                    next - 1
                ),
            });
        }
        Ok(RoundLog {
            log,
            next: Mutex::new(next),
        })
    }

    /// Appends `records` in one write and one sync; their sequence numbers
    /// and heads, in order.
    pub(crate) fn file(&self, records: Vec<Vec<u8>>) -> Result<Vec<(u64, Head)>, StoreError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let first = *next;
        let heads = (first..)
            .zip(&records)
            .map(|(seq, r)| (seq, head(seq, r)))
            .collect();
        let count = records.len() as u64;
        self.log.append((first..).zip(records))?;
        *next = first + count;
        Ok(heads)
    }

    /// Bytes in the log's files.
    pub(crate) fn bytes(&self) -> Result<u64, StoreError> {
        self.log.bytes()
    }

    /// Forgets every record, for an import that replaces them all.
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.log.truncate(0)?;
        *next = 1;
        Ok(())
    }

    /// The bytes of the record of block `index` that `head` names.
    fn read(&self, index: u64, head: &[u8]) -> Result<Vec<u8>, StoreError> {
        let damaged = |detail: String| StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!("round {index}: {detail}"),
        };
        let Ok(head) = Head::try_from(head) else {
            return Err(damaged(format!(
                "a filed record's head of {} bytes",
                head.len()
            )));
        };
        let seq = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(head[9..13].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(head[13..].try_into().expect("4 bytes"));
        match self.log.read(seq, seq + 1)?.pop() {
            Some((_, bytes)) if bytes.len() == len as usize && crc32fast::hash(&bytes) == crc => {
                Ok(bytes)
            }
            Some(_) => Err(damaged(format!(
                "record {seq} of {DIR} is not the one filed for it"
            ))),
            None => Err(damaged(format!("record {seq} is missing from {DIR}"))),
        }
    }
}

/// The [`ROUNDS`] values of a transaction's rounds ([`prepare`]), each
/// beside the record it was made from: the commands' own.
pub(crate) struct Prepared<'c>(Vec<(&'c RoundRecord, Value)>);

/// A record's value in [`ROUNDS`]: the record, or the head of the one filed
/// as number `filed`.
pub(crate) struct Value {
    pub bytes: Vec<u8>,
    pub filed: Option<u64>,
}

impl Prepared<'_> {
    /// The value made from `round` itself (the same record, not an equal
    /// one), so a transaction can only store what was prepared for it.
    pub(crate) fn get(&self, round: &RoundRecord) -> Option<&Value> {
        self.0
            .iter()
            .find(|(r, _)| std::ptr::eq(*r, round))
            .map(|(_, v)| v)
    }
}

/// The [`ROUNDS`] values of the rounds `commands` commit: each record
/// encoded, and the big ones filed in `log` (one write, one sync), before
/// any transaction may name them: filing is IO, which a transaction's body,
/// run perhaps more than once, must not do.
pub(crate) fn prepare<'c>(
    log: Option<&RoundLog>,
    anchor: Option<&Anchor>,
    commands: &[&'c Command],
) -> Result<Prepared<'c>, StoreError> {
    let mut values: Vec<(&RoundRecord, Value)> = commands
        .iter()
        .filter_map(|cmd| match cmd {
            Command::CommitRound { round, .. } => Some((
                round,
                Value {
                    bytes: encode_round(round),
                    filed: None,
                },
            )),
            _ => None,
        })
        .collect();
    if let Some(log) = log {
        let big: Vec<usize> = (0..values.len())
            .filter(|&i| files(anchor, values[i].0.index, values[i].1.bytes.len()))
            .collect();
        if !big.is_empty() {
            let records = big.iter().map(|&i| std::mem::take(&mut values[i].1.bytes));
            let heads = log.file(records.collect())?;
            for (i, (seq, head)) in big.into_iter().zip(heads) {
                values[i].1 = Value {
                    bytes: head.to_vec(),
                    filed: Some(seq),
                };
            }
        }
    }
    Ok(Prepared(values))
}

fn head(seq: u64, record: &[u8]) -> Head {
    let mut head = [0; 17];
    head[0] = ROUND_LAYOUT_FILED;
    head[1..9].copy_from_slice(&seq.to_be_bytes());
    head[9..13].copy_from_slice(&(record.len() as u32).to_be_bytes());
    head[13..].copy_from_slice(&crc32fast::hash(record).to_be_bytes());
    head
}

/// Whether a record of `len` bytes for block `index` is filed: only records
/// with a layout byte (from lottery v2 on), so that a head is never taken
/// for one of schema 1's records, which have none.
pub(crate) fn files(anchor: Option<&Anchor>, index: u64, len: usize) -> bool {
    len > FILED_BYTES && versioned(anchor, index)
}

fn versioned(anchor: Option<&Anchor>, index: u64) -> bool {
    anchor.is_some_and(|a| index >= a.from)
}

/// The record bytes that `value`, block `index`'s value in [`ROUNDS`],
/// stands for: itself, or the filed record its head names (`log` is `None`
/// only for a store in memory, which files nothing).
pub(crate) fn record_bytes<'v>(
    log: Option<&RoundLog>,
    anchor: Option<&Anchor>,
    index: u64,
    value: &'v [u8],
) -> Result<Cow<'v, [u8]>, StoreError> {
    match (value.first(), log) {
        (Some(&ROUND_LAYOUT_FILED), Some(log)) if versioned(anchor, index) => {
            log.read(index, value).map(Cow::Owned)
        }
        _ => Ok(Cow::Borrowed(value)),
    }
}

/// Block `index`'s round record from its value in [`ROUNDS`].
pub(crate) fn decode_stored(
    log: Option<&RoundLog>,
    anchor: Option<&Anchor>,
    index: u64,
    value: &[u8],
) -> Result<RoundRecord, StoreError> {
    decode_round(anchor, index, &record_bytes(log, anchor, index, value)?)
}
