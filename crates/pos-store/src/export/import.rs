//! A new data directory from export lines, verified before posd will use it.
//!
//! The store is built in `<target>/sled` while every block is re-hashed and
//! re-linked and every draw replayed (pos-core's `verify`), with a marker file
//! `<target>/import.partial` that makes posd refuse the directory meanwhile.
//! Only when the trailer's checksum and counts agree too does the store get
//! its schema version, its files synced and its acknowledgement record, and
//! the marker go: a posd started there serves exactly the imported chain. A
//! refused import removes what it made, leaving the target as it found it.

use super::lines::{bad, LineReader};
use super::{Header, ImportError, Proposed, Record};
use crate::codec::encode;
use crate::layout::*;
use crate::store::{lock, sled_config, LOCK};
use crate::sync::{io_err, sync_path};
use crate::{Counts, Store, StoreError};
use pos_core::verify::{check_link, check_round, ChainVerifier};
use pos_core::{Address, Block, RoundRecord, Validator};
use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The marker of an import under way, inside the target.
pub const PARTIAL: &str = "import.partial";

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub header: Header,
    pub blocks: u64,
    pub validators: u64,
    pub proposed: u64,
}

/// Reads export lines from `input` and builds a data directory at `target`
/// (absent or empty) from them; on any fault nothing is left behind.
pub fn import<R: BufRead>(input: R, target: &Path) -> Result<Imported, ImportError> {
    check_target(target)?;
    let mut lines = LineReader::new(input);
    let header = match lines.next_record()? {
        Some((_, Record::Header(header))) => header,
        _ => return Err(bad(1, "no header")),
    };
    let mut importer = Importer::create(target, header)?;
    let mut last = 1;
    while let Some((line, record)) = lines.next_record()? {
        importer.push(line, record)?;
        last = line;
    }
    importer.commit(last + 1)
}

/// The sections of an export, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Chain,
    Validators,
    Proposed,
}

impl Section {
    fn of(record: &Record) -> Option<Section> {
        match record {
            Record::Block(_) | Record::Round(_) => Some(Section::Chain),
            Record::Validator(_) => Some(Section::Validators),
            Record::Proposed(_) => Some(Section::Proposed),
            Record::Header(_) | Record::End(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Section::Chain => "block and round",
            Section::Validators => "validator",
            Section::Proposed => "proposed",
        }
    }
}

/// A data directory being built from records pushed in file order.
pub struct Importer {
    target: PathBuf,
    /// Keeps a posd from starting in the target while it is being filled.
    lock: File,
    /// The store being filled, unchecked until complete.
    store: Store,
    header: Header,
    section: Section,
    /// The last block verified and written.
    parent: Option<Block>,
    /// A block read whose round record comes next.
    pending: Option<Block>,
    last_validator: Option<Address>,
    last_proposed: Option<Address>,
    counts: Counts,
    blocks: u64,
    validators: u64,
    proposed: u64,
    /// Last, so that it runs after sled has closed: undoes a refused import.
    guard: Guard,
}

fn not_empty(target: &Path) -> ImportError {
    ImportError::Target(format!(
        "{} is not empty: posd imports only into a new or empty directory",
        target.display()
    ))
}

/// `Ok` if `target` does not exist (`true`) or is an empty directory.
pub fn check_target(target: &Path) -> Result<bool, ImportError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => match entries.next() {
            None => Ok(false),
            Some(_) => Err(not_empty(target)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(ImportError::Target(
            format!("{} is not a directory", target.display()),
        )),
        Err(e) => Err(io_err(target)(e).into()),
    }
}

impl Importer {
    /// Starts an import of the state `header` describes into `target`,
    /// which must be absent or empty.
    pub fn create(target: &Path, header: Header) -> Result<Importer, ImportError> {
        if header.schema != SCHEMA_VERSION {
            return Err(bad(
                1,
                format!(
                    "the export holds store schema {}; this posd reads schema {SCHEMA_VERSION}",
                    header.schema
                ),
            ));
        }
        let created_target = check_target(target)?;
        std::fs::create_dir_all(target).map_err(io_err(target))?;
        let lock = lock(target).inspect_err(|_| {
            // Someone else holds it: what is there is theirs.
            if created_target {
                let _ = std::fs::remove_dir(target);
            }
        })?;
        // Another import may have filled it between the check and the lock.
        let strangers = std::fs::read_dir(target)
            .map_err(io_err(target))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() != LOCK);
        if strangers {
            return Err(not_empty(target));
        }
        // From here on, dropping the guard undoes whatever was made.
        let guard = Guard {
            target: target.to_owned(),
            created_target,
            armed: true,
        };
        // On disk before the store is: posd never takes a half import for a chain.
        let marker = target.join(PARTIAL);
        File::create(&marker).map_err(io_err(&marker))?;
        sync_path(target)?;
        let store = Store::of(sled_config(&target.join("sled")).open()?)?;
        Ok(Importer {
            target: target.to_owned(),
            lock,
            store,
            header,
            section: Section::Chain,
            parent: None,
            pending: None,
            last_validator: None,
            last_proposed: None,
            counts: Counts::default(),
            blocks: 0,
            validators: 0,
            proposed: 0,
            guard,
        })
    }

    /// Verifies and stores the record read at `line`.
    pub fn push(&mut self, line: u64, record: Record) -> Result<(), ImportError> {
        let Some(section) = Section::of(&record) else {
            return Err(bad(
                line,
                format!("a {} record in the middle", record.kind()),
            ));
        };
        self.enter(line, section)?;
        match record {
            Record::Block(block) => self.block(line, block),
            Record::Round(round) => self.round(line, round),
            Record::Validator(v) => self.validator(line, v),
            Record::Proposed(p) => self.proposed(line, p),
            Record::Header(_) | Record::End(_) => unreachable!("no section"),
        }
    }

    /// Moves on to `section` (sections only ever advance), closing the ones before.
    fn enter(&mut self, line: u64, section: Section) -> Result<(), ImportError> {
        if section < self.section {
            return Err(bad(
                line,
                format!(
                    "a {} record after the {} records: the order is blocks and rounds, \
                     validators, proposed",
                    section.name(),
                    self.section.name()
                ),
            ));
        }
        if section > self.section {
            if self.section == Section::Chain {
                self.end_chain(line)?;
            }
            self.section = section;
        }
        Ok(())
    }

    fn block(&mut self, line: u64, block: Block) -> Result<(), ImportError> {
        let fault = |e: pos_core::verify::VerifyError| bad(line, e.to_string());
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
                ChainVerifier::new()
                    .push(block.clone(), None)
                    .map_err(fault)?;
                if block.hash != self.header.genesis {
                    return Err(bad(
                        line,
                        format!(
                            "genesis hash {} differs from the header's {}",
                            block.hash, self.header.genesis
                        ),
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

    fn round(&mut self, line: u64, round: RoundRecord) -> Result<(), ImportError> {
        let (Some(parent), Some(block)) = (&self.parent, self.pending.take()) else {
            return Err(bad(
                line,
                format!("the round record of block {} follows no block", round.index),
            ));
        };
        check_round(parent, &block, &round).map_err(|e| bad(line, e.to_string()))?;
        self.put_block(&block, Some(&round))?;
        self.parent = Some(block);
        Ok(())
    }

    /// Writes a verified block (and its draw) as the store's `append` lays them
    /// out. One insert at a time: sled's batches hold far more memory.
    fn put_block(&mut self, block: &Block, round: Option<&RoundRecord>) -> Result<(), StoreError> {
        let key = block.index.to_be_bytes();
        self.store.blocks.insert(key, encode(block))?;
        self.store.block_index.insert(block.hash.0, &key)?;
        if let Some(round) = round {
            self.store.rounds.insert(key, encode(round))?;
        }
        self.blocks += 1;
        Ok(())
    }

    /// The chain must end at the header's tip, each block with its round.
    fn end_chain(&self, line: u64) -> Result<(), ImportError> {
        if let Some(pending) = &self.pending {
            return Err(bad(
                line,
                format!("block {} has no round record", pending.index),
            ));
        }
        let h = &self.header;
        match &self.parent {
            Some(tip) if tip.index == h.height && tip.hash == h.tip => Ok(()),
            Some(tip) => Err(bad(
                line,
                format!(
                    "the chain ends at block {} ({}), but the header says height {} ({})",
                    tip.index, tip.hash, h.height, h.tip
                ),
            )),
            None => Err(bad(line, "no blocks: an export starts with genesis")),
        }
    }

    fn validator(&mut self, line: u64, v: Validator) -> Result<(), ImportError> {
        in_order(line, "validator", &mut self.last_validator, v.address)?;
        match v.status() {
            pos_core::Status::Active => self.counts.active += 1,
            pos_core::Status::Slashed => self.counts.slashed += 1,
        }
        self.store.validators.insert(v.address.0 .0, encode(&v))?;
        self.validators += 1;
        Ok(())
    }

    fn proposed(&mut self, line: u64, p: Proposed) -> Result<(), ImportError> {
        in_order(line, "proposed", &mut self.last_proposed, p.address)?;
        if !self.store.validators.contains_key(p.address.0 .0)? {
            return Err(bad(
                line,
                format!("proposed validator {} is no validator", p.address),
            ));
        }
        self.store
            .proposed
            .insert(p.address.0 .0, &p.at_ms.to_be_bytes())?;
        self.proposed += 1;
        Ok(())
    }

    /// After the trailer (line `end`) checked out: completes the store and
    /// makes it one posd starts from.
    pub fn commit(self, end: u64) -> Result<Imported, ImportError> {
        if self.section == Section::Chain {
            self.end_chain(end)?;
        }
        let h = &self.header;
        if (self.counts.active, self.counts.slashed) != (h.validators_active, h.validators_slashed)
        {
            return Err(bad(
                end,
                format!(
                    "the header counts {} active and {} slashed validators; the file holds {} and {}",
                    h.validators_active,
                    h.validators_slashed,
                    self.counts.active,
                    self.counts.slashed
                ),
            ));
        }
        let meta = &self.store.meta;
        meta.insert(META_TIP, &h.height.to_be_bytes())?;
        meta.insert(META_ACTIVE, &h.validators_active.to_be_bytes())?;
        meta.insert(META_SLASHED, &h.validators_slashed.to_be_bytes())?;
        meta.insert(META_APPLIED, &h.applied.to_be_bytes())?;
        meta.insert(META_PROPOSALS_SINCE, &h.proposals_since_ms.to_be_bytes())?;
        meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        let Importer {
            target,
            lock,
            store,
            header,
            blocks,
            validators,
            proposed,
            mut guard,
            ..
        } = self;
        // Checked as a start checks it, made durable, then acknowledged.
        let store = store.checked(header.proposals_since_ms)?;
        store.flush()?;
        let store = store.attach(&target, lock, None)?;
        if store.tip()?.hash != header.tip {
            return Err(StoreError::Invalid(format!(
                "the imported store's tip is not {}",
                header.tip
            ))
            .into());
        }
        let marker = target.join(PARTIAL);
        std::fs::remove_file(&marker).map_err(io_err(&marker))?;
        sync_path(&target)?;
        guard.armed = false;
        Ok(Imported {
            header,
            blocks,
            validators,
            proposed,
        })
    }
}

/// Keys must come in strictly ascending order, as the store iterates them.
fn in_order(
    line: u64,
    what: &str,
    last: &mut Option<Address>,
    address: Address,
) -> Result<(), ImportError> {
    if last.is_some_and(|l| address <= l) {
        return Err(bad(
            line,
            format!("{what} {address} is out of order (addresses ascend, each once)"),
        ));
    }
    *last = Some(address);
    Ok(())
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
            // The target was empty: all of these are the import's.
            let _ = std::fs::remove_dir_all(self.target.join("sled"));
            let _ = std::fs::remove_file(self.target.join(crate::acked::FILE));
            let _ = std::fs::remove_file(self.target.join(PARTIAL));
            let _ = std::fs::remove_file(self.target.join(LOCK));
            if self.created_target {
                let _ = std::fs::remove_dir(&self.target);
            }
        }
    }
}
