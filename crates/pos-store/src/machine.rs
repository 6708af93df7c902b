//! pos-core's [`State`] over one sled transaction: how the trees of
//! `layout` hold the records a command reads and writes. It decides nothing.
//! Validators are read from the transaction's own writes, then the cache
//! (`cache`), never from sled: the cache holds every committed one.

use crate::cache::{Overlay, Validators};
use crate::codec::{decode, encode, secret_value, u64_value};
use crate::layout::*;
use crate::round_log::{self, Prepared, RoundLog};
use crate::StoreError;
use pos_core::lottery::Anchor;
use pos_core::transition::{Counts, State};
use pos_core::{Address, Block, RoundRecord, Secret, Validator, Weighting};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

pub(crate) type TxError = ConflictableTransactionError<StoreError>;

fn abort(e: StoreError) -> TxError {
    ConflictableTransactionError::Abort(e)
}

/// The trees of one multi-tree transaction. The transaction's body may run
/// more than once, so this only reads and writes trees and the run's own
/// overlay, which the cache takes only once sled committed.
pub(crate) struct TxState<'a> {
    pub blocks: &'a TransactionalTree,
    pub block_index: &'a TransactionalTree,
    pub rounds: &'a TransactionalTree,
    pub validators: &'a TransactionalTree,
    pub proposed: &'a TransactionalTree,
    pub meta: &'a TransactionalTree,
    pub overlay: &'a Overlay,
    pub cache: &'a Validators,
    /// The values of the rounds this transaction may append, encoded (and
    /// filed) before it began.
    pub prepared: &'a Prepared<'a>,
    pub round_log: Option<&'a RoundLog>,
}

impl TxState<'_> {
    fn meta_u64(&self, key: &[u8]) -> Result<u64, TxError> {
        match self.meta.get(key)? {
            None => Ok(0),
            Some(v) => u64_value(META, &v).map_err(abort),
        }
    }

    fn set_meta_u64(&self, key: &[u8], value: u64) -> Result<(), TxError> {
        self.meta.insert(key, &value.to_be_bytes())?;
        Ok(())
    }

    /// Counts one more applied command (applied or refused alike).
    pub(crate) fn bump_applied(&self) -> Result<(), TxError> {
        self.set_meta_u64(META_APPLIED, self.meta_u64(META_APPLIED)? + 1)
    }
}

impl State for TxState<'_> {
    type Error = TxError;

    fn validator(&self, address: &Address) -> Result<Option<Validator>, TxError> {
        Ok(match self.overlay.get(address) {
            Some(written) => written,
            None => self.cache.get(address),
        })
    }

    fn validators_at<'a>(
        &self,
        addresses: impl ExactSizeIterator<Item = &'a Address> + Clone,
        mut each: impl FnMut(Option<&Validator>),
    ) -> Result<(), TxError> {
        let written = self.overlay.writes();
        self.cache.each_at(addresses, |a, v| {
            each(written.get(a).map_or(v, Option::as_ref))
        });
        Ok(())
    }

    fn put_validator(&self, validator: &Validator) -> Result<(), TxError> {
        self.validators
            .insert(&validator.address.0 .0, encode(validator))?;
        self.overlay.put(validator);
        Ok(())
    }

    fn tip(&self) -> Result<Block, TxError> {
        let Some(index) = self.meta.get(META_TIP)? else {
            return Err(abort(StoreError::Foreign("no tip".into())));
        };
        let index = u64_value(META, &index).map_err(abort)?;
        match self.blocks.get(index.to_be_bytes())? {
            Some(v) => decode(BLOCKS, &v).map_err(abort),
            None => Err(abort(StoreError::missing_block(index))),
        }
    }

    fn append(&self, block: &Block, round: &RoundRecord) -> Result<(), TxError> {
        let key = block.index.to_be_bytes();
        self.blocks.insert(&key, encode(block))?;
        self.block_index.insert(&block.hash.0, &key)?;
        let value = self.prepared.get(round).ok_or_else(|| {
            abort(StoreError::Invalid(format!(
                "the round record of block {} was not prepared",
                block.index
            )))
        })?;
        self.rounds.insert(&key, value.bytes.as_slice())?;
        if let Some(seq) = value.filed {
            self.set_meta_u64(META_ROUND_LOG_NAMED, seq)?;
        }
        self.meta.insert(META_TIP, &key)?;
        Ok(())
    }

    fn lottery_secret(&self) -> Result<Secret, TxError> {
        match self.meta.get(META_LOTTERY_SECRET)? {
            Some(v) => secret_value(META, &v).map_err(abort),
            None => Err(abort(StoreError::Corrupt {
                tree: META,
                detail: "the lottery's pending secret is missing".into(),
            })),
        }
    }

    fn set_lottery_secret(&self, secret: &Secret) -> Result<(), TxError> {
        self.meta.insert(META_LOTTERY_SECRET, &secret.0)?;
        Ok(())
    }

    fn counts(&self) -> Result<Counts, TxError> {
        Ok(Counts {
            active: self.meta_u64(META_ACTIVE)?,
            slashed: self.meta_u64(META_SLASHED)?,
        })
    }

    fn set_counts(&self, counts: Counts) -> Result<(), TxError> {
        self.set_meta_u64(META_ACTIVE, counts.active)?;
        self.set_meta_u64(META_SLASHED, counts.slashed)
    }

    fn proposed(&self, address: &Address) -> Result<bool, TxError> {
        Ok(self.proposed.get(address.0 .0)?.is_some())
    }

    fn mark_proposed(&self, address: &Address, at_ms: u64) -> Result<(), TxError> {
        self.proposed.insert(&address.0 .0, &at_ms.to_be_bytes())?;
        Ok(())
    }

    fn proposals_since_ms(&self) -> Result<u64, TxError> {
        match self.meta.get(META_PROPOSALS_SINCE)? {
            Some(v) => u64_value(META, &v).map_err(abort),
            // Not recorded: nobody can be shown never to have proposed.
            None => Ok(u64::MAX),
        }
    }

    fn remove_validator(&self, address: &Address) -> Result<(), TxError> {
        self.validators.remove(&address.0 .0)?;
        self.overlay.remove(address);
        Ok(())
    }

    fn weighting(&self) -> Result<Weighting, TxError> {
        match self.meta.get(META_WEIGHTING)? {
            Some(v) => decode(META, &v).map_err(abort),
            None => Ok(Weighting::Stake),
        }
    }

    fn round(&self, index: u64) -> Result<Option<RoundRecord>, TxError> {
        let Some(bytes) = self.rounds.get(index.to_be_bytes())? else {
            return Ok(None);
        };
        // Only where v2 begins matters to the layout (the commitment does not).
        let anchor = match self.meta.get(META_LOTTERY_FROM)? {
            Some(v) => Some(Anchor {
                from: u64_value(META, &v).map_err(abort)?,
                commitment: pos_core::Digest::default(),
            }),
            None => None,
        };
        round_log::decode_stored(self.round_log, anchor.as_ref(), index, &bytes)
            .map(Some)
            .map_err(abort)
    }
}
