//! Export lines into a store, verified whole before anything is replaced.
//!
//! Two passes. The first reads the stream once, re-hashing and re-linking
//! every block and replaying every draw (pos-core's [`ChainVerifier`], v1 and
//! v2), checking the order of the records, that the pending secret is the one
//! the tip's round committed to, and the trailer's checksum and counts; what
//! passes is spooled, as the store's own entries, to an unlinked file. Only a
//! stream that passes whole reaches the second pass, which sets a marker
//! ([`data_dir::PARTIAL`]) in the data directory, replaces every tree with the spooled
//! entries, flushes and syncs, rewrites the acknowledgement record, and
//! removes the marker. A crash in between leaves the marker, and the next
//! open refuses the directory as damaged instead of serving part of a chain.

use super::lines::{bad, LineReader};
use super::spool::Spool;
use super::{Header, Proposed, Record};
use crate::codec::{encode, encode_round_at, encode_spec};
use crate::data_dir::{self, lock, LOCK};
use crate::layout::*;
use crate::round_log::{self, RoundLog};
use crate::sync::io_err;
use crate::{Counts, Store, StoreError};
use pos_core::lottery::{expected_commitment, Anchor};
use pos_core::verify::{check_link, ChainVerifier, VerifyError};
use pos_core::{Address, Block, Digest, RoundRecord, Status, Validator};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What an import installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub header: Header,
    pub blocks: u64,
    pub validators: u64,
    pub proposed: u64,
}

/// The trees a spooled entry names by position.
const BLOCKS_AT: u8 = 0;
const BLOCK_INDEX_AT: u8 = 1;
const ROUNDS_AT: u8 = 2;
const VALIDATORS_AT: u8 = 3;
const PROPOSED_AT: u8 = 4;

impl Store {
    /// Replaces this store's whole content with the state `input` holds,
    /// after verifying all of it (a refused stream leaves the store as it
    /// was, and the error names the first bad line); returns the header's
    /// `extra`. Nothing else may use the store meanwhile: readers would see
    /// it half replaced. Memory stays flat whatever the chain's length.
    pub fn restore_from(
        &self,
        input: impl BufRead,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let verified = verify(input, &self.spool_dir())?;
        Ok(self.install(verified, None)?.header.extra)
    }

    /// [`Store::restore_from`] for a cluster node installing a snapshot:
    /// `raft_applied` (the snapshot's log position, as the cluster encodes
    /// it) is written with the state, before the marker goes, so a crash
    /// never leaves the new state at the old position.
    pub fn restore_snapshot(
        &self,
        input: impl BufRead,
        raft_applied: &[u8],
    ) -> Result<(), StoreError> {
        let verified = verify(input, &self.spool_dir())?;
        self.install(verified, Some(raft_applied)).map(|_| ())
    }

    /// The second pass: the verified entries replace the store's.
    fn install(
        &self,
        verified: Verified,
        raft_applied: Option<&[u8]>,
    ) -> Result<Imported, StoreError> {
        let dir = self.data_dir();
        if let Some(dir) = dir {
            data_dir::mark_import(dir, true)?;
        }
        let trees = self.chain_trees();
        for tree in trees {
            tree.clear()?;
        }
        let h = &verified.header;
        let anchor = Anchor {
            from: h.lottery.from,
            commitment: h.lottery.commitment,
        };
        let mut filing = self.round_log.as_deref().map(Filing::new).transpose()?;
        // One insert at a time: sled's batches hold far more memory.
        let mut entries = verified.spool.read()?;
        while let Some(entry) = entries.next()? {
            if let [tree, key_len, rest @ ..] = entry {
                let (key, value) = rest.split_at(*key_len as usize);
                match &mut filing {
                    Some(f) if *tree == ROUNDS_AT && filed(&anchor, key, value)? => {
                        f.push(key, value, &self.rounds)?
                    }
                    _ => {
                        trees[*tree as usize].insert(key, value)?;
                    }
                }
            }
        }
        if let Some(f) = filing {
            f.finish(&self.rounds, &self.meta)?;
        }
        let meta = &self.meta;
        meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        meta.insert(META_TIP, &h.height.to_be_bytes())?;
        meta.insert(META_ACTIVE, &verified.counts.active.to_be_bytes())?;
        meta.insert(META_SLASHED, &verified.counts.slashed.to_be_bytes())?;
        meta.insert(META_APPLIED, &h.applied.to_be_bytes())?;
        meta.insert(META_PROPOSALS_SINCE, &h.proposals_since_ms.to_be_bytes())?;
        let (stored, weighting) = encode_spec(&h.chain_spec);
        meta.insert(META_CHAIN_SPEC, stored)?;
        meta.insert(META_WEIGHTING, weighting)?;
        meta.insert(META_LOTTERY_FROM, &anchor.from.to_be_bytes())?;
        meta.insert(META_LOTTERY_ANCHOR, &anchor.commitment.0)?;
        meta.insert(META_LOTTERY_SECRET, &h.lottery.pending_secret.0)?;
        if let Some(position) = raft_applied {
            meta.insert(META_RAFT_APPLIED, position)?;
        }
        self.replaced(h.chain_spec.clone(), anchor)?;
        self.flush()?;
        if let Some(dir) = dir {
            data_dir::mark_import(dir, false)?;
        }
        Ok(Imported {
            header: verified.header,
            blocks: verified.blocks,
            validators: verified.validators,
            proposed: verified.proposed,
        })
    }
}

/// An install's big round records on their way to the round log, filed a
/// batch at a time (one write and one sync each), their heads then put in
/// the rounds tree.
struct Filing<'a> {
    log: &'a RoundLog,
    keys: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
    bytes: usize,
    /// The last record filed so far.
    named: Option<u64>,
}

/// Whether the rounds entry `key -> value` is a record to file.
fn filed(anchor: &Anchor, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
    let index = crate::codec::u64_value(ROUNDS, key)?;
    Ok(round_log::files(Some(anchor), index, value.len()))
}

/// Bytes of records filed with one sync.
const FILING_BATCH: usize = 16 << 20;

impl<'a> Filing<'a> {
    /// Empties `log`: the store's trees were cleared, so nothing names its
    /// records any more.
    fn new(log: &'a RoundLog) -> Result<Filing<'a>, StoreError> {
        log.clear()?;
        Ok(Filing {
            log,
            keys: Vec::new(),
            records: Vec::new(),
            bytes: 0,
            named: None,
        })
    }

    fn push(&mut self, key: &[u8], value: &[u8], rounds: &sled::Tree) -> Result<(), StoreError> {
        self.keys.push(key.to_vec());
        self.records.push(value.to_vec());
        self.bytes += value.len();
        if self.bytes >= FILING_BATCH {
            self.file(rounds)?;
        }
        Ok(())
    }

    fn file(&mut self, rounds: &sled::Tree) -> Result<(), StoreError> {
        let heads = self.log.file(std::mem::take(&mut self.records))?;
        for (key, (seq, head)) in self.keys.drain(..).zip(heads) {
            rounds.insert(key, &head)?;
            self.named = Some(seq);
        }
        self.bytes = 0;
        Ok(())
    }

    /// Files the last batch and records the last record named.
    fn finish(mut self, rounds: &sled::Tree, meta: &sled::Tree) -> Result<(), StoreError> {
        self.file(rounds)?;
        if let Some(seq) = self.named {
            meta.insert(META_ROUND_LOG_NAMED, &seq.to_be_bytes())?;
        }
        Ok(())
    }
}

/// Reads export lines from `input` and builds a data directory at `target`
/// (absent or empty) from them, verified whole before the store exists; on
/// any fault nothing is left behind.
pub fn import(input: impl BufRead, target: &Path) -> Result<Imported, StoreError> {
    let created_target = check_target(target)?;
    std::fs::create_dir_all(target).map_err(io_err(target))?;
    let lock = match lock(target) {
        Ok(lock) => lock,
        // Another import or posd got there first: what is there is theirs.
        Err(StoreError::Locked(..)) => return Err(not_empty(target)),
        Err(e) => return Err(e),
    };
    // Another import may have filled it between the check and the lock.
    let strangers = std::fs::read_dir(target)
        .map_err(io_err(target))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name() != LOCK);
    if strangers {
        return Err(not_empty(target));
    }
    // From here on, dropping the guard undoes whatever was made.
    let mut guard = Guard {
        target: target.to_owned(),
        created_target,
        armed: true,
    };
    // The spool has no name: the target holds only the lock while the stream is read.
    let verified = verify(input, target)?;
    let store = Store::open_locked(
        target,
        &verified.header.chain_spec,
        lock,
        crate::store::Genesis::Await,
    )?;
    let imported = store.install(verified, None)?;
    drop(store);
    guard.armed = false;
    Ok(imported)
}

fn not_empty(target: &Path) -> StoreError {
    StoreError::Target(format!(
        "{} is not empty: posd imports only into a new or empty directory",
        target.display()
    ))
}

/// `Ok(true)` if `target` does not exist, `Ok(false)` if it is an empty
/// directory; else why an import may not write there.
pub fn check_target(target: &Path) -> Result<bool, StoreError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => match entries.next() {
            None => Ok(false),
            Some(_) => Err(not_empty(target)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(StoreError::Target(
            format!("{} is not a directory", target.display()),
        )),
        Err(e) => Err(io_err(target)(e)),
    }
}

/// Undoes a refused import, unless disarmed: removes what it made in the target.
struct Guard {
    target: PathBuf,
    /// Whether the target did not exist before.
    created_target: bool,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            // The target was empty: everything in it is the import's.
            if self.created_target {
                let _ = std::fs::remove_dir_all(&self.target);
            } else if let Ok(entries) = std::fs::read_dir(&self.target) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
        }
    }
}

/// A stream that passed the first pass.
pub(crate) struct Verified {
    header: Header,
    /// Recounted from the validator records: the header does not say.
    counts: Counts,
    /// Entries as (tree, key length, key, value), in file order.
    spool: Spool,
    blocks: u64,
    validators: u64,
    proposed: u64,
}

/// The first pass: `input` verified whole, its entries spooled in `spool_dir`.
pub(crate) fn verify(input: impl BufRead, spool_dir: &Path) -> Result<Verified, StoreError> {
    let mut lines = LineReader::new(input);
    let header = match lines.next_record()? {
        Some((_, Record::Header(header))) => header,
        _ => return Err(bad(1, "no header")),
    };
    let mut verifier = Verifier::new(header, Spool::create(spool_dir)?)?;
    let mut last = 1;
    while let Some((line, record)) = lines.next_record()? {
        verifier.push(line, record)?;
        last = line;
    }
    verifier.finish(last + 1)
}

/// Checks records pushed in file order, spooling what passed.
struct Verifier {
    header: Header,
    chain: ChainVerifier,
    /// Past the blocks and rounds, into the validators.
    in_validators: bool,
    /// The last block verified.
    parent: Option<Block>,
    /// A block read whose round record comes next.
    pending: Option<Block>,
    /// What the last round committed the next one to.
    committed: Option<Digest>,
    /// The last validator, until its proposed mark (if any) is read.
    last_validator: Option<Address>,
    marked: bool,
    v: Verified,
}

impl Verifier {
    fn new(header: Header, spool: Spool) -> Result<Verifier, StoreError> {
        if header.schema != EXPORT_SCHEMA {
            return Err(bad(
                1,
                format!(
                    "the export holds store schema {}; this posd reads schema {EXPORT_SCHEMA}",
                    header.schema
                ),
            ));
        }
        if let Err(e) = header.chain_spec.weighting.check() {
            return Err(bad(1, format!("the chain spec's weighting: {e}")));
        }
        let anchor = Anchor {
            from: header.lottery.from,
            commitment: header.lottery.commitment,
        };
        Ok(Verifier {
            chain: ChainVerifier::new(Some(anchor)).weighted(header.chain_spec.weighting),
            in_validators: false,
            parent: None,
            pending: None,
            committed: None,
            last_validator: None,
            marked: false,
            v: Verified {
                header: header.clone(),
                counts: Counts::default(),
                spool,
                blocks: 0,
                validators: 0,
                proposed: 0,
            },
            header,
        })
    }

    fn push(&mut self, line: u64, record: Record) -> Result<(), StoreError> {
        match record {
            Record::Block(block) => self.block(line, block),
            Record::Round(round) => self.round(line, round),
            Record::Validator(v) => self.validator(line, v),
            Record::Proposed(p) => self.proposed(line, p),
            Record::Header(_) | Record::End(_) => Err(bad(
                line,
                format!("a {} record in the middle", record.kind()),
            )),
        }
    }

    fn entry(&mut self, tree: u8, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let key_len = u8::try_from(key.len()).expect("keys are 8 or 32 bytes");
        self.v.spool.push(&[&[tree, key_len], key, value])
    }

    fn block(&mut self, line: u64, block: Block) -> Result<(), StoreError> {
        let fault = |e: VerifyError| bad(line, e.to_string());
        if self.in_validators {
            return Err(bad(
                line,
                "a block after the validators: blocks and rounds come first",
            ));
        }
        if let Some(pending) = &self.pending {
            return Err(bad(
                line,
                format!(
                    "block {}: the round record of block {} must come first",
                    block.index, pending.index
                ),
            ));
        }
        match &self.parent {
            None => {
                self.chain.push(block.clone(), None).map_err(fault)?;
                if block.hash != self.header.genesis {
                    return Err(bad(
                        line,
                        format!(
                            "genesis hash {} differs from the header's {}",
                            block.hash, self.header.genesis
                        ),
                    ));
                }
                if block != self.header.chain_spec.genesis() {
                    return Err(bad(
                        line,
                        "genesis is not the block the header's chain spec makes",
                    ));
                }
                self.put_block(&block, None)?;
                self.parent = Some(block);
            }
            Some(parent) => {
                check_link(parent, &block).map_err(fault)?;
                self.pending = Some(block);
            }
        }
        Ok(())
    }

    fn round(&mut self, line: u64, round: RoundRecord) -> Result<(), StoreError> {
        let Some(block) = self.pending.take() else {
            return Err(bad(
                line,
                format!("the round record of block {} follows no block", round.index),
            ));
        };
        self.chain
            .push(block.clone(), Some(&round))
            .map_err(|e| bad(line, e.to_string()))?;
        self.committed = round.rule.next_commitment();
        self.put_block(&block, Some(&round))?;
        self.parent = Some(block);
        Ok(())
    }

    /// Spools a verified block (and its draw) as the store's `append` lays them out.
    fn put_block(&mut self, block: &Block, round: Option<&RoundRecord>) -> Result<(), StoreError> {
        let key = block.index.to_be_bytes();
        self.entry(BLOCKS_AT, &key, &encode(block))?;
        self.entry(BLOCK_INDEX_AT, &block.hash.0, &key)?;
        if let Some(round) = round {
            let from = self.header.lottery.from;
            self.entry(ROUNDS_AT, &key, &encode_round_at(from, round))?;
        }
        self.v.blocks += 1;
        Ok(())
    }

    /// The chain must end at the header's tip, each block with its round.
    fn end_chain(&mut self, line: u64) -> Result<(), StoreError> {
        if let Some(pending) = &self.pending {
            return Err(bad(
                line,
                format!("block {} has no round record", pending.index),
            ));
        }
        let h = &self.header;
        match &self.parent {
            Some(tip) if tip.index == h.height && tip.hash == h.tip => {}
            Some(tip) => {
                return Err(bad(
                    line,
                    format!(
                        "the chain ends at block {} ({}), but the header says height {} ({})",
                        tip.index, tip.hash, h.height, h.tip
                    ),
                ))
            }
            None => return Err(bad(line, "no blocks: an export starts with genesis")),
        }
        // Without the secret the tip's round committed to, no round could close.
        let anchor = Anchor {
            from: h.lottery.from,
            commitment: h.lottery.commitment,
        };
        let due = expected_commitment(Some(&anchor), h.height + 1, self.committed);
        if due != Ok(Some(h.lottery.pending_secret.commitment())) {
            return Err(bad(
                1,
                format!(
                    "the header's pending secret is not the one the round of block {} must \
                     reveal: the next round could not close",
                    h.height + 1
                ),
            ));
        }
        self.in_validators = true;
        Ok(())
    }

    fn validator(&mut self, line: u64, v: Validator) -> Result<(), StoreError> {
        if !self.in_validators {
            self.end_chain(line)?;
        }
        if self.last_validator.is_some_and(|last| v.address <= last) {
            return Err(bad(
                line,
                format!(
                    "validator {} is out of order (addresses ascend, each once)",
                    v.address
                ),
            ));
        }
        match v.status() {
            Status::Active => self.v.counts.active += 1,
            Status::Slashed => self.v.counts.slashed += 1,
        }
        self.entry(VALIDATORS_AT, &v.address.0 .0, &encode(&v))?;
        self.last_validator = Some(v.address);
        self.marked = false;
        self.v.validators += 1;
        Ok(())
    }

    fn proposed(&mut self, line: u64, p: Proposed) -> Result<(), StoreError> {
        if self.marked || self.last_validator != Some(p.address) {
            return Err(bad(
                line,
                format!(
                    "the proposed mark of {} does not follow that validator's line",
                    p.address
                ),
            ));
        }
        self.entry(PROPOSED_AT, &p.address.0 .0, &p.at_ms.to_be_bytes())?;
        self.marked = true;
        self.v.proposed += 1;
        Ok(())
    }

    /// After the trailer (line `end`) checked out.
    fn finish(mut self, end: u64) -> Result<Verified, StoreError> {
        if !self.in_validators {
            self.end_chain(end)?;
        }
        Ok(self.v)
    }
}
