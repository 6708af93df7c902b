//! Value encoding: bincode's standard (varint) configuration over serde.

use crate::layout::{ROUNDS, ROUND_LAYOUT};
use crate::StoreError;
use pos_core::lottery::{Anchor, Candidate, Rule, Secret};
use pos_core::{Digest, RoundRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("posd's records always encode")
}

pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| StoreError::Corrupt {
            tree,
            detail: e.to_string(),
        })?;
    if read != bytes.len() {
        return Err(StoreError::Corrupt {
            tree,
            detail: format!("{} trailing bytes", bytes.len() - read),
        });
    }
    Ok(value)
}

pub(crate) fn u64_value(tree: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        tree,
        detail: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn bytes32(tree: &'static str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        tree,
        detail: format!("expected 32 bytes, found {}", bytes.len()),
    })
}

pub(crate) fn secret_value(tree: &'static str, bytes: &[u8]) -> Result<Secret, StoreError> {
    bytes32(tree, bytes).map(Secret)
}

/// A round record as schema 1 stored it.
#[derive(Deserialize)]
struct RoundV1 {
    index: u64,
    seed: Digest,
    candidates: Vec<Candidate>,
    ticket: u128,
    winner: usize,
}

/// A round record as schema 1 wrote it, for writing one back.
#[derive(Serialize)]
struct RoundV1Ref<'a> {
    index: u64,
    seed: &'a Digest,
    candidates: &'a [Candidate],
    ticket: u128,
    winner: usize,
}

/// A round record in the layout its height says, in a store whose lottery
/// v2 begins at block `from` (see [`ROUNDS`]; [`decode_round`] reads it back).
pub(crate) fn encode_round_at(from: u64, round: &RoundRecord) -> Vec<u8> {
    if round.index >= from {
        return encode_round(round);
    }
    encode(&RoundV1Ref {
        index: round.index,
        seed: &round.seed,
        candidates: &round.candidates,
        ticket: round.ticket,
        winner: round.winner,
    })
}

/// A round record as schema 2 writes it: the layout byte, then bincode.
pub(crate) fn encode_round(round: &RoundRecord) -> Vec<u8> {
    let mut out = vec![ROUND_LAYOUT];
    out.extend(encode(round));
    out
}

/// The record of block `index`'s round, in the layout its height says
/// (see [`ROUNDS`]): schema 1's below the anchor, versioned from it.
pub(crate) fn decode_round(
    anchor: Option<&Anchor>,
    index: u64,
    bytes: &[u8],
) -> Result<RoundRecord, StoreError> {
    if anchor.is_none_or(|a| index < a.from) {
        let r: RoundV1 = decode(ROUNDS, bytes)?;
        return Ok(RoundRecord {
            index: r.index,
            seed: r.seed,
            candidates: r.candidates,
            ticket: r.ticket,
            winner: r.winner,
            rule: Rule::V1,
        });
    }
    match bytes.split_first() {
        Some((&ROUND_LAYOUT, body)) => decode(ROUNDS, body),
        other => Err(StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!(
                "round {index} has layout version {:?}, this posd reads {ROUND_LAYOUT}",
                other.map(|(v, _)| *v)
            ),
        }),
    }
}
