//! A consistent copy of a store as export lines, taken while posd serves.
//!
//! Blocks and round records are never rewritten once committed, so blocks
//! `0..=height` can be read at leisure after the snapshot is taken. What
//! changes (validators, the `proposed` tree, meta) is copied aside at that
//! instant into an unlinked spool file next to the store, which costs the
//! caller's pause O(validators) and memory nothing.

use super::lines::LineWriter;
use super::spool::Spool;
use super::{ExportSummary, Header, Lottery, Proposed, Record, FORMAT, VERSION};
use crate::codec::{decode, u64_value};
use crate::layout::{
    BLOCKS, EXPORT_SCHEMA, META, META_PROPOSALS_SINCE, PROPOSED, ROUNDS, SCHEMA_VERSION,
};
use crate::reads::height_range;
use crate::round_log::{decode_stored, RoundLog};
use crate::{Store, StoreError};
use pos_core::lottery::Anchor;
use std::io::Write;
use std::sync::Arc;

/// A store's state at one instant, ready to be written out.
pub struct Snapshot {
    header: Header,
    anchor: Anchor,
    blocks: sled::Tree,
    rounds: sled::Tree,
    /// Where the big records are: appended to, never rewritten, while the
    /// snapshot is written.
    round_log: Option<Arc<RoundLog>>,
    /// Per validator, in address order: a byte saying whether it proposed,
    /// when it first did (u64 BE), then its record as stored.
    validators: Spool,
}

impl Store {
    /// Takes a snapshot of a flushed store, reading only. Nothing may apply
    /// commands meanwhile (posd runs this on its writer thread, after a
    /// flush); the snapshot may be written afterwards, while commands go on.
    /// `extra` is carried in the header as it is (see [`Header::extra`]).
    pub fn snapshot(&self, extra: Option<serde_json::Value>) -> Result<Snapshot, StoreError> {
        let tip = self.tip()?;
        // A round's record reveals its secret: only durable ones may leave.
        if tip.index > self.durable_height() {
            return Err(StoreError::Invalid(format!(
                "block {} is applied but not yet flushed: flush before a snapshot",
                tip.index
            )));
        }
        let genesis = self.block(0)?.ok_or_else(|| StoreError::missing_block(0))?;
        let proposals_since_ms = match self.meta.get(META_PROPOSALS_SINCE)? {
            Some(v) => u64_value(META, &v)?,
            None => return Err(StoreError::Foreign("no proposals_since".into())),
        };
        let anchor = self.lottery_anchor().ok_or(StoreError::Schema {
            found: 1,
            expected: SCHEMA_VERSION,
        })?;
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            schema: EXPORT_SCHEMA,
            chain_spec: self.chain_spec(),
            genesis: genesis.hash,
            height: tip.index,
            tip: tip.hash,
            applied: self.applied()?,
            proposals_since_ms,
            lottery: Lottery {
                from: anchor.from,
                commitment: anchor.commitment,
                pending_secret: self.pending_secret()?,
            },
            extra,
        };
        let mut validators = Spool::create(&self.spool_dir())?;
        for entry in self.validators.iter() {
            let (address, value) = entry?;
            let mark = match self.proposed.get(&address)? {
                Some(at) => [[1].as_slice(), &u64_value(PROPOSED, &at)?.to_be_bytes()].concat(),
                None => vec![0; 9],
            };
            validators.push(&[&mark, &value])?;
        }
        Ok(Snapshot {
            header,
            anchor,
            blocks: self.blocks.clone(),
            rounds: self.rounds.clone(),
            round_log: self.round_log.clone(),
            validators,
        })
    }

    /// The whole store as export lines into `w`: what is applied is flushed,
    /// then a snapshot taken and written (nothing may apply commands until
    /// this returns; a running posd exports through [`Store::snapshot`] and
    /// writes it off its writer). An error from the flush leaves the disk
    /// behind memory, as [`Store::flush`] says: the caller must stop.
    pub fn export_to(
        &self,
        w: impl Write,
        extra: Option<serde_json::Value>,
    ) -> Result<ExportSummary, StoreError> {
        self.flush()?;
        self.snapshot(extra)?.write(w)
    }
}

impl Snapshot {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Writes every line, the trailer last, and flushes `w`.
    pub fn write(self, w: impl Write) -> Result<ExportSummary, StoreError> {
        let mut out = LineWriter::new(w);
        let height = self.header.height;
        out.write(&Record::Header(self.header.clone()))
            .map_err(StoreError::Write)?;
        let mut rounds = self.rounds.range(1u64.to_be_bytes()..=height.to_be_bytes());
        let mut next = 0;
        for block in height_range(&self.blocks, BLOCKS, 0, height) {
            let block: pos_core::Block = block?;
            if block.index != next {
                return Err(StoreError::missing_block(next));
            }
            out.write(&Record::Block(block))
                .map_err(StoreError::Write)?;
            if next > 0 {
                let missing = || StoreError::Corrupt {
                    tree: ROUNDS,
                    detail: format!("the round record of block {next} is missing"),
                };
                let (key, value) = rounds.next().transpose()?.ok_or_else(missing)?;
                if u64_value(ROUNDS, &key)? != next {
                    return Err(missing());
                }
                let log = self.round_log.as_deref();
                let round = decode_stored(log, Some(&self.anchor), next, &value)?;
                out.write(&Record::Round(round))
                    .map_err(StoreError::Write)?;
            }
            next += 1;
        }
        if next != height + 1 {
            return Err(StoreError::missing_block(next));
        }
        let mut validators = self.validators.read()?;
        while let Some(entry) = validators.next()? {
            let (mark, value) = entry.split_at(9);
            let validator: pos_core::Validator = decode(crate::layout::VALIDATORS, value)?;
            let address = validator.address;
            out.write(&Record::Validator(validator))
                .map_err(StoreError::Write)?;
            if mark[0] == 1 {
                let at_ms = u64_value(PROPOSED, &mark[1..])?;
                out.write(&Record::Proposed(Proposed { address, at_ms }))
                    .map_err(StoreError::Write)?;
            }
        }
        let trailer = out.finish().map_err(StoreError::Write)?;
        Ok(ExportSummary {
            header: self.header,
            trailer,
        })
    }
}
