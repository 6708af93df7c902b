//! A consistent copy of a store as export lines, taken while posd serves.
//!
//! Blocks and round records are never rewritten once committed, so blocks
//! `0..=height` can be read at leisure after the snapshot is taken. What
//! changes (validators, the `proposed` tree, meta) is copied aside at that
//! instant into an unlinked spool file next to the store, which costs the
//! caller's pause O(validators) and memory nothing.

use super::lines::LineWriter;
use super::{ExportError, Header, Proposed, Record, Trailer, FORMAT, VERSION};
use crate::codec::{decode, u64_value};
use crate::layout::{BLOCKS, META, META_PROPOSALS_SINCE, PROPOSED, ROUNDS, SCHEMA_VERSION};
use crate::store::{height_range, missing_block};
use crate::sync::io_err;
use crate::{Store, StoreError};
use pos_core::{Address, Digest};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A store's state at one instant, ready to be written out.
pub struct Snapshot {
    header: Header,
    blocks: sled::Tree,
    rounds: sled::Tree,
    /// Validator records as stored, in address order.
    validators: Spool,
    /// `proposed` entries as stored (key then value), in address order.
    proposed: Spool,
}

impl Store {
    /// Takes a snapshot. Nothing may apply commands meanwhile (posd runs
    /// this on its writer thread); the snapshot may be written afterwards.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let tip = self.tip()?;
        let genesis = self.block(0)?.ok_or_else(|| missing_block(0))?;
        let counts = self.counts()?;
        let proposals_since_ms = match self.meta.get(META_PROPOSALS_SINCE)? {
            Some(v) => u64_value(META, &v)?,
            None => return Err(StoreError::Foreign("no proposals_since".into())),
        };
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            schema: SCHEMA_VERSION,
            genesis: genesis.hash,
            height: tip.index,
            tip: tip.hash,
            applied: self.applied()?,
            proposals_since_ms,
            validators_active: counts.active,
            validators_slashed: counts.slashed,
        };
        let dir = self.spool_dir();
        let mut validators = Spool::create(&dir)?;
        for value in self.validators.iter().values() {
            validators.push(&value?)?;
        }
        let mut proposed = Spool::create(&dir)?;
        for entry in self.proposed.iter() {
            let (key, value) = entry?;
            proposed.push(&[key.as_ref(), value.as_ref()].concat())?;
        }
        Ok(Snapshot {
            header,
            blocks: self.blocks.clone(),
            rounds: self.rounds.clone(),
            validators,
            proposed,
        })
    }

    /// The whole store as export lines into `w` (no command may be applied
    /// meanwhile; a running posd exports through [`Store::snapshot`]).
    pub fn export<W: Write>(&self, w: W) -> Result<(Trailer, W), ExportError> {
        self.snapshot()?.write(w)
    }
}

impl Snapshot {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Writes every line, the trailer last; returns it and `w`.
    pub fn write<W: Write>(self, w: W) -> Result<(Trailer, W), ExportError> {
        let mut out = LineWriter::new(w);
        let height = self.header.height;
        out.write(&Record::Header(self.header))?;
        let mut rounds = height_range(&self.rounds, ROUNDS, 1, height);
        let mut next = 0;
        for block in height_range(&self.blocks, BLOCKS, 0, height) {
            let block: pos_core::Block = block?;
            if block.index != next {
                return Err(missing_block(next).into());
            }
            out.write(&Record::Block(block))?;
            if next > 0 {
                let round = rounds.next().transpose()?.ok_or(StoreError::Corrupt {
                    tree: ROUNDS,
                    detail: format!("the round record of block {next} is missing"),
                })?;
                out.write(&Record::Round(round))?;
            }
            next += 1;
        }
        if next != height + 1 {
            return Err(missing_block(next).into());
        }
        let mut validators = self.validators.read()?;
        while let Some(value) = validators.next()? {
            out.write(&Record::Validator(decode(
                crate::layout::VALIDATORS,
                &value,
            )?))?;
        }
        let mut proposed = self.proposed.read()?;
        while let Some(entry) = proposed.next()? {
            out.write(&Record::Proposed(proposed_entry(&entry)?))?;
        }
        Ok(out.finish()?)
    }
}

/// A `proposed` entry: 32-byte address, then the u64 BE time.
fn proposed_entry(entry: &[u8]) -> Result<Proposed, StoreError> {
    let corrupt = || StoreError::Corrupt {
        tree: PROPOSED,
        detail: format!("an entry of {} bytes, not 32 + 8", entry.len()),
    };
    let (key, value) = entry.split_at_checked(32).ok_or_else(corrupt)?;
    let address = Address(Digest(key.try_into().map_err(|_| corrupt())?));
    Ok(Proposed {
        address,
        at_ms: u64_value(PROPOSED, value)?,
    })
}

/// Length-prefixed byte strings in an unlinked temporary file.
struct Spool {
    file: BufWriter<File>,
    dir: PathBuf,
}

impl Spool {
    fn create(dir: &Path) -> Result<Spool, StoreError> {
        let file = tempfile::tempfile_in(dir).map_err(io_err(dir))?;
        Ok(Spool {
            file: BufWriter::with_capacity(256 * 1024, file),
            dir: dir.to_owned(),
        })
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let len = u32::try_from(bytes.len()).expect("sled values are under 4 GiB");
        self.file
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.file.write_all(bytes))
            .map_err(io_err(&self.dir))
    }

    fn read(self) -> Result<SpoolReader, StoreError> {
        let Spool { file, dir } = self;
        let mut file = file
            .into_inner()
            .map_err(|e| io_err(&dir)(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&dir))?;
        Ok(SpoolReader {
            file: BufReader::with_capacity(256 * 1024, file),
            dir,
        })
    }
}

struct SpoolReader {
    file: BufReader<File>,
    dir: PathBuf,
}

impl SpoolReader {
    fn next(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut len = [0u8; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&self.dir)(e)),
        }
        let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
        self.file
            .read_exact(&mut bytes)
            .map_err(io_err(&self.dir))?;
        Ok(Some(bytes))
    }
}
