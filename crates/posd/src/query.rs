//! Reads that posctl (over the admin socket) and the HTTP API both make,
//! resolved against the store here once, so both find the same things and
//! refuse with the same words.

use pos_core::{Address, Block, Digest, RoundRecord, Validator};
use pos_proto::{BlockId, HexPrefix};
use pos_store::{Store, StoreError};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// What a lookup found, or why it found nothing (told to the reader as is).
pub type Found<T> = Result<T, String>;

/// Matches an ambiguous prefix's error lists in full.
const LISTED_MATCHES: usize = 5;

/// The blocks `chain show` and `/api/blocks` select on a chain at `height`:
/// `from..=to` (default: all), or the `last` N up to `to`; clamped to the
/// chain. `None` when that is no block at all.
pub fn block_range(
    height: u64,
    from: Option<u64>,
    to: Option<u64>,
    last: Option<u64>,
) -> Option<RangeInclusive<u64>> {
    let to = to.unwrap_or(height).min(height);
    let from = match last {
        Some(0) => return None,
        Some(n) => (to + 1).saturating_sub(n).max(from.unwrap_or(0)),
        None => from.unwrap_or(0),
    };
    (from <= to).then_some(from..=to)
}

/// The one key `prefix` selects through `find` (a store prefix scan), or
/// why none or several do. `what` names the key.
fn unique<K: Display>(
    what: &str,
    prefix: &HexPrefix,
    find: impl FnOnce(&[u8], Option<u8>, usize) -> Result<Vec<K>, StoreError>,
) -> Result<Found<K>, StoreError> {
    let (bytes, nibble) = prefix.bytes();
    let mut found = find(&bytes, nibble, LISTED_MATCHES + 1)?;
    Ok(Err(match found.len() {
        0 => format!("no {what} starts with {prefix}"),
        1 => return Ok(Ok(found.remove(0))),
        n => {
            let mut why = format!("{prefix} matches more than one {what}; give more digits:");
            for key in found.iter().take(LISTED_MATCHES) {
                why.push_str(&format!("\n  {key}"));
            }
            if n > LISTED_MATCHES {
                why.push_str("\n  ... and more");
            }
            why
        }
    }))
}

pub fn block(store: &Store, id: BlockId) -> Result<Found<Block>, StoreError> {
    let found = match id {
        BlockId::Index(i) => store.block(i)?,
        BlockId::Hash(h) => store.block_by_hash(&h)?,
    };
    Ok(found.ok_or_else(|| match id {
        BlockId::Index(i) => format!("no block at index {i}"),
        BlockId::Hash(h) => format!("no block with hash {h}"),
    }))
}

/// The one block whose hash starts with `prefix`.
pub fn block_by_prefix(store: &Store, prefix: &HexPrefix) -> Result<Found<Block>, StoreError> {
    let find = |b: &[u8], n, l| store.hashes_with_prefix(b, n, l);
    match unique("block hash", prefix, find)? {
        Ok(hash) => block(store, BlockId::Hash(hash)),
        Err(why) => Ok(Err(why)),
    }
}

pub fn validator(store: &Store, address: &Address) -> Result<Found<Validator>, StoreError> {
    Ok(store
        .validator(address)?
        .ok_or_else(|| format!("no validator {address}")))
}

/// The one validator whose address starts with `prefix`.
pub fn validator_by_prefix(
    store: &Store,
    prefix: &HexPrefix,
) -> Result<Found<Validator>, StoreError> {
    let find = |b: &[u8], n, l| store.addresses_with_prefix(b, n, l);
    match unique("validator address", prefix, find)? {
        Ok(address) => validator(store, &address),
        Err(why) => Ok(Err(why)),
    }
}

/// A stored draw with what replaying it takes besides.
pub struct Draw {
    pub record: RoundRecord,
    /// The parent's hash, the seed's input.
    pub prev_hash: Digest,
    /// What the reveal must answer (`None` under lottery v1).
    pub commitment: Option<Digest>,
    /// The previous rounds' records a stake_age draw's ages come from.
    pub history: Vec<RoundRecord>,
}

/// The stored draw of block `index`. Only durable rounds are stored to be
/// read (see `Store::round`), so a reveal is never served before its round
/// is final; the commitment is looked up only for a stored round.
pub fn round(store: &Store, index: u64) -> Result<Found<Draw>, StoreError> {
    let parent = match index.checked_sub(1) {
        Some(p) => store.block(p)?,
        None => return Ok(Err("block 0 is genesis: it had no lottery".into())),
    };
    let (Some(record), Some(parent)) = (store.round(index)?, parent) else {
        return Ok(Err(format!("no lottery round stored for block {index}")));
    };
    let from = index.saturating_sub(record.weighting.history()).max(1);
    let history = match from < index {
        true => store.rounds(from, index - 1).collect::<Result<_, _>>()?,
        false => Vec::new(),
    };
    Ok(Ok(Draw {
        record,
        prev_hash: parent.hash,
        commitment: store.commitment_for(index)?,
        history,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_to_the_chain() {
        assert_eq!(block_range(5, None, None, None), Some(0..=5));
        assert_eq!(block_range(5, Some(2), Some(9), None), Some(2..=5));
        assert_eq!(block_range(5, None, None, Some(2)), Some(4..=5));
        assert_eq!(block_range(5, Some(5), None, Some(3)), Some(5..=5));
        assert_eq!(block_range(5, None, Some(1), Some(9)), Some(0..=1));
        assert_eq!(block_range(5, None, None, Some(0)), None);
        assert_eq!(block_range(5, Some(6), None, None), None);
    }
}
