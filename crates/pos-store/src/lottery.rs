//! The lottery's durable part: where lottery v2 begins (the anchor) and the
//! round's pending secret, as a store records them. pos-core's lottery says
//! what they mean; the reads that serve them are in `reads.rs`.

use crate::codec::{bytes32, u64_value};
use crate::layout::*;
use crate::StoreError;
use pos_core::lottery::Anchor;
use pos_core::{Digest, Secret};
use rand::RngCore;
use sled::transaction::TransactionalTree;

/// The first v2 round, that of block `from`: its secret, 32 bytes from the
/// OS RNG (drawn outside any transaction body, which sled may run twice),
/// and the anchor committing to it.
pub(crate) fn first_round(from: u64) -> (Anchor, Secret) {
    let mut secret = Secret([0; 32]);
    rand::rngs::OsRng.fill_bytes(&mut secret.0);
    let anchor = Anchor {
        from,
        commitment: secret.commitment(),
    };
    (anchor, secret)
}

/// Records where lottery v2 starts, and its first secret as the pending one.
pub(crate) fn start_lottery(
    meta: &TransactionalTree,
    anchor: &Anchor,
    secret: &Secret,
) -> Result<(), sled::transaction::ConflictableTransactionError<StoreError>> {
    meta.insert(META_LOTTERY_FROM, &anchor.from.to_be_bytes())?;
    meta.insert(META_LOTTERY_ANCHOR, &anchor.commitment.0)?;
    meta.insert(META_LOTTERY_SECRET, &secret.0)?;
    Ok(())
}

/// Where lottery v2 begins, as `meta` records it.
pub(crate) fn read_anchor(meta: &sled::Tree) -> Result<Anchor, StoreError> {
    let get = |key: &[u8]| {
        meta.get(key)?.ok_or_else(|| StoreError::Corrupt {
            tree: META,
            detail: format!("{} is missing", String::from_utf8_lossy(key)),
        })
    };
    Ok(Anchor {
        from: u64_value(META, &get(META_LOTTERY_FROM)?)?,
        commitment: Digest(bytes32(META, &get(META_LOTTERY_ANCHOR)?)?),
    })
}
