//! The store's reads: the chain, round records (only once durable), the
//! lottery's public commitments, validators and prefix lookups, each lazy
//! where it may be long.

use crate::codec::{decode, secret_value, u64_value};
use crate::layout::*;
use crate::locks::read;
use crate::round_log::decode_stored;
use crate::store::{History, Store};
use crate::StoreError;
use pos_core::lottery::{expected_commitment, Anchor};
use pos_core::transition::Counts;
use pos_core::{Address, Block, Digest, RoundRecord, Secret, Validator};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Store {
    pub fn tip(&self) -> Result<Block, StoreError> {
        let index = match self.meta.get(META_TIP)? {
            Some(v) => u64_value(META, &v)?,
            None => return Err(StoreError::Foreign("no tip".into())),
        };
        self.block(index)?
            .ok_or_else(|| StoreError::missing_block(index))
    }

    pub fn block(&self, index: u64) -> Result<Option<Block>, StoreError> {
        self.blocks
            .get(index.to_be_bytes())?
            .map(|v| decode(BLOCKS, &v))
            .transpose()
    }

    pub fn block_by_hash(&self, hash: &Digest) -> Result<Option<Block>, StoreError> {
        match self.block_index.get(hash.0)? {
            Some(i) => self.block(u64_value(BLOCK_INDEX, &i)?),
            None => Ok(None),
        }
    }

    /// The record of block `index`'s round, once durable: a record reveals
    /// its round's secret, which must never be seen while a crash could
    /// still bring that secret back as the pending one.
    pub fn round(&self, index: u64) -> Result<Option<RoundRecord>, StoreError> {
        if index > self.durable_height() {
            return Ok(None);
        }
        let log = self.round_log.as_deref();
        self.rounds
            .get(index.to_be_bytes())?
            .map(|v| decode_stored(log, self.lottery_anchor().as_ref(), index, &v))
            .transpose()
    }

    /// The records a draw of block `index` under `weighting` reads (the
    /// last `age_window` under `stake_age`, none otherwise), oldest first,
    /// durable or not: for the node's own draw, never to be served.
    ///
    /// Every proposal's confirmation weighs it against these, so the last
    /// ones read are kept, decoded, until the chain grows or changes: read
    /// afresh per proposal, 10,000 validators proposing under `stake_age`
    /// decoded 100,000 records of 10,000 candidates a round.
    pub fn history(
        &self,
        index: u64,
        weighting: &pos_core::Weighting,
    ) -> Result<Arc<[RoundRecord]>, StoreError> {
        let from = index.saturating_sub(weighting.history()).max(1);
        if from >= index {
            return Ok(Arc::new([]));
        }
        // The block before `index` names the chain the records belong to.
        let Some(last) = self.block(index - 1)? else {
            return Ok(Arc::new([]));
        };
        let key = (from, last.hash);
        let mut kept = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = kept.as_ref().filter(|h| h.key == key) {
            return Ok(Arc::clone(&h.records));
        }
        let anchor = self.lottery_anchor();
        let mut out = Vec::new();
        for i in from..index {
            if let Some(v) = self.rounds.get(i.to_be_bytes())? {
                out.push(decode_stored(
                    self.round_log.as_deref(),
                    anchor.as_ref(),
                    i,
                    &v,
                )?);
            }
        }
        let records: Arc<[RoundRecord]> = out.into();
        *kept = Some(History {
            key,
            records: Arc::clone(&records),
        });
        Ok(records)
    }

    /// Height of the last block on stable storage.
    pub fn durable_height(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Blocks `from..=to` in order, read lazily: constant memory whatever the range.
    pub fn blocks(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<Block, StoreError>> + Send + 'static {
        height_range(&self.blocks, BLOCKS, from, to)
    }

    /// Durable round records `from..=to` in order, read lazily (genesis has none).
    pub fn rounds(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<RoundRecord, StoreError>> + Send + 'static {
        let anchor = self.lottery_anchor();
        let to = to.min(self.durable_height());
        let log = self.round_log.clone();
        self.rounds
            .range(from.to_be_bytes()..=to.to_be_bytes())
            .map(move |kv| {
                let (key, value) = kv?;
                let index = u64_value(ROUNDS, &key)?;
                decode_stored(log.as_deref(), anchor.as_ref(), index, &value)
            })
    }

    /// The validator at `address`, from the cache of every committed one
    /// (no sled read: this is every candidate of every round close).
    pub fn validator(&self, address: &Address) -> Result<Option<Validator>, StoreError> {
        Ok(self.cache.get(address))
    }

    /// Hands `each` the validator at every one of `addresses`, in order;
    /// quickest for a round's candidates (in address order, most of the
    /// validators).
    pub fn validators_at<'a>(
        &self,
        addresses: impl ExactSizeIterator<Item = &'a Address> + Clone,
        mut each: impl FnMut(Option<&Validator>),
    ) {
        self.cache.each_at(addresses, |_, v| each(v));
    }

    /// Whether the validator ever proposed (it is then never forgotten).
    pub fn proposed(&self, address: &Address) -> Result<bool, StoreError> {
        Ok(self.proposed.get(address.0 .0)?.is_some())
    }

    /// Every validator, by address, read lazily.
    pub fn validators(
        &self,
    ) -> impl Iterator<Item = Result<Validator, StoreError>> + Send + 'static {
        self.validators.iter().map(|kv| decode(VALIDATORS, &kv?.1))
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        let read = |key| -> Result<u64, StoreError> {
            self.meta.get(key)?.map_or(Ok(0), |v| u64_value(META, &v))
        };
        Ok(Counts {
            active: read(META_ACTIVE)?,
            slashed: read(META_SLASHED)?,
        })
    }

    /// sled's files and the round log's.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let filed = match &self.round_log {
            Some(log) => log.bytes()?,
            None => 0,
        };
        Ok(self.db.size_on_disk()? + filed)
    }

    /// Up to `limit` block hashes, in order, that start with `prefix` and then
    /// with the high half `nibble` of the next byte (an odd count of hex digits).
    pub fn hashes_with_prefix(
        &self,
        prefix: &[u8],
        nibble: Option<u8>,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        keys_with_prefix(&self.block_index, BLOCK_INDEX, prefix, nibble, limit)
    }

    /// Up to `limit` validator addresses, in order, selected as by [`Store::hashes_with_prefix`].
    pub fn addresses_with_prefix(
        &self,
        prefix: &[u8],
        nibble: Option<u8>,
        limit: usize,
    ) -> Result<Vec<Address>, StoreError> {
        let keys = keys_with_prefix(&self.validators, VALIDATORS, prefix, nibble, limit)?;
        Ok(keys.into_iter().map(Address).collect())
    }

    /// Where the chain's lottery v2 begins; `None` before a schema-1 store's
    /// migration (which [`Store::open`] does).
    pub fn lottery_anchor(&self) -> Option<Anchor> {
        *read(&self.anchor)
    }

    /// The secret the next block's round will reveal. For the proposer that
    /// closes that round only: nothing may serve it (posctl, HTTP, the
    /// validator protocol, logs) before then.
    pub fn pending_secret(&self) -> Result<Secret, StoreError> {
        match self.meta.get(META_LOTTERY_SECRET)? {
            Some(v) => secret_value(META, &v),
            None => Err(StoreError::Corrupt {
                tree: META,
                detail: "the lottery's pending secret is missing".into(),
            }),
        }
    }

    /// The open round's commitment: public, so that anyone can hold the
    /// node to it when the round closes.
    pub fn next_commitment(&self) -> Result<Digest, StoreError> {
        Ok(self.pending_secret()?.commitment())
    }

    /// What the round of block `index` had to reveal a preimage of (`None`
    /// under v1): the anchor's commitment, or the previous round's.
    pub fn commitment_for(&self, index: u64) -> Result<Option<Digest>, StoreError> {
        let anchor = self.lottery_anchor();
        let anchor = anchor.as_ref();
        let previous = match anchor {
            Some(a) if index > a.from => self
                .round(index - 1)?
                .and_then(|r| r.rule.next_commitment()),
            _ => None,
        };
        expected_commitment(anchor, index, previous).map_err(|e| StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!("round {index}: {e}"),
        })
    }
}

/// A scan of a tree of 32-byte keys from the first key the prefix allows,
/// up to the first key it does not.
fn keys_with_prefix(
    tree: &sled::Tree,
    name: &'static str,
    prefix: &[u8],
    nibble: Option<u8>,
    limit: usize,
) -> Result<Vec<Digest>, StoreError> {
    let mut start = prefix.to_vec();
    start.extend(nibble.map(|n| n << 4));
    let selected = |key: &[u8]| {
        key.starts_with(prefix)
            && (nibble.is_none() || key.get(prefix.len()).map(|b| b >> 4) == nibble)
    };
    let mut found = Vec::new();
    for key in tree.range(start..).keys() {
        let key = key?;
        if found.len() == limit || !selected(&key) {
            break;
        }
        let key = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            tree: name,
            detail: format!("a key of {} bytes, not 32", key.len()),
        })?;
        found.push(Digest(key));
    }
    Ok(found)
}

/// Decoded values of a tree keyed by height, `from..=to`, read lazily.
pub(crate) fn height_range<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<T, StoreError>> + Send + 'static {
    tree.range(from.to_be_bytes()..=to.to_be_bytes())
        .map(move |kv| decode(name, &kv?.1))
}
