//! Whole-store verification: the chain (`posctl chain verify`, `posd --check`)
//! and the validator records, in constant memory.

use crate::{Store, StoreError};
use pos_core::verify::ChainVerifier;

/// What a full check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Blocks re-hashed, re-linked and replayed (genesis included).
    pub blocks: u64,
    /// Validator records decoded.
    pub validators: u64,
}

impl Store {
    /// Re-hashes, re-links and replays the draw of every durable block
    /// (checking each v2 reveal against the commitment made before its round
    /// opened), reading blocks and round records as two sequential scans.
    /// `progress(checked, height)` runs after each block; returning `false`
    /// stops early with `Ok(None)`.
    pub fn verify_chain(
        &self,
        mut progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<Option<u64>, StoreError> {
        let height = self.durable_height();
        let mut verifier =
            ChainVerifier::new(self.lottery_anchor()).weighted(self.chain_spec().weighting);
        let mut checked = 0u64;
        let mut rounds = self.rounds(1, height);
        let at = |checked: u64| {
            move |e: StoreError| StoreError::Invalid(format!("block {checked}: {e}"))
        };
        for block in self.blocks(0, height) {
            let block = block.map_err(at(checked))?;
            let round = match checked {
                0 => None,
                _ => rounds.next().transpose().map_err(at(checked))?,
            };
            verifier
                .push(block, round.as_ref())
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            checked += 1;
            if !progress(checked, height) {
                return Ok(None);
            }
        }
        if checked != height + 1 {
            return Err(StoreError::Invalid(format!(
                "block {checked} is missing (tip is {height})"
            )));
        }
        Ok(Some(checked))
    }

    /// The chain (as [`Store::verify_chain`]) and every validator record.
    pub fn check_all(&self) -> Result<Checked, StoreError> {
        let blocks = self.verify_chain(|_, _| true)?.unwrap_or(0);
        let mut validators = 0;
        for v in self.validators() {
            v?;
            validators += 1;
        }
        let counts = self.counts()?;
        if counts.active + counts.slashed != validators {
            return Err(StoreError::Invalid(format!(
                "{validators} validator records, but the counters say {} active and {} slashed",
                counts.active, counts.slashed
            )));
        }
        Ok(Checked { blocks, validators })
    }
}
