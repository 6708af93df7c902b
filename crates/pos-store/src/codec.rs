//! Value encoding: bincode's standard (varint) configuration over serde.

use crate::layout::{META, ROUNDS, ROUND_LAYOUT, ROUND_LAYOUT_STAKE};
use crate::StoreError;
use pos_core::lottery::{Anchor, Candidate, Rule, Secret};
use pos_core::{ChainSpec, Digest, RoundRecord, Weighting};
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

/// `meta/chain_spec` as it has always been laid out: the spec without its
/// weighting, which `meta/lottery_weighting` holds.
#[derive(Serialize, Deserialize)]
struct StoredSpec {
    genesis_ms: u64,
    block_reward: u64,
    max_stake: u64,
    max_bpm: u32,
    slash_on_invalid_bpm: bool,
}

/// The values of `meta/chain_spec` and `meta/lottery_weighting` for `spec`.
pub(crate) fn encode_spec(spec: &ChainSpec) -> (Vec<u8>, Vec<u8>) {
    let stored = StoredSpec {
        genesis_ms: spec.genesis_ms,
        block_reward: spec.block_reward,
        max_stake: spec.max_stake,
        max_bpm: spec.max_bpm,
        slash_on_invalid_bpm: spec.slash_on_invalid_bpm,
    };
    (encode(&stored), encode(&spec.weighting))
}

/// The chain spec from `meta/chain_spec` and `meta/lottery_weighting`
/// (absent: stake).
pub(crate) fn decode_spec(spec: &[u8], weighting: Option<&[u8]>) -> Result<ChainSpec, StoreError> {
    let s: StoredSpec = decode(META, spec)?;
    let weighting: Weighting = weighting
        .map(|w| decode(META, w))
        .transpose()?
        .unwrap_or_default();
    weighting.check().map_err(|e| StoreError::Corrupt {
        tree: META,
        detail: format!("the chain's weighting: {e}"),
    })?;
    Ok(ChainSpec {
        genesis_ms: s.genesis_ms,
        block_reward: s.block_reward,
        max_stake: s.max_stake,
        max_bpm: s.max_bpm,
        slash_on_invalid_bpm: s.slash_on_invalid_bpm,
        weighting,
    })
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

/// A stake-drawn round record as schema 2 lays it out.
#[derive(Deserialize)]
struct RoundV2 {
    index: u64,
    seed: Digest,
    candidates: Vec<Candidate>,
    ticket: u128,
    winner: usize,
    rule: Rule,
}

/// A stake-drawn round record in schema 2's layout, for writing one.
#[derive(Serialize)]
struct RoundV2Ref<'a> {
    index: u64,
    seed: &'a Digest,
    candidates: &'a [Candidate],
    ticket: u128,
    winner: usize,
    rule: &'a Rule,
}

/// A round record as schema 2 writes it: the layout byte, then bincode:
/// schema 2's record for a stake draw, the whole record for any other.
pub(crate) fn encode_round(round: &RoundRecord) -> Vec<u8> {
    if round.weighting == Weighting::Stake && round.weights.is_empty() {
        let mut out = vec![ROUND_LAYOUT_STAKE];
        out.extend(encode(&RoundV2Ref {
            index: round.index,
            seed: &round.seed,
            candidates: &round.candidates,
            ticket: round.ticket,
            winner: round.winner,
            rule: &round.rule,
        }));
        return out;
    }
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
            weighting: Weighting::Stake,
            weights: Vec::new(),
        });
    }
    match bytes.split_first() {
        Some((&ROUND_LAYOUT_STAKE, body)) => {
            let r: RoundV2 = decode(ROUNDS, body)?;
            Ok(RoundRecord {
                index: r.index,
                seed: r.seed,
                candidates: r.candidates,
                ticket: r.ticket,
                winner: r.winner,
                rule: r.rule,
                weighting: Weighting::Stake,
                weights: Vec::new(),
            })
        }
        Some((&ROUND_LAYOUT, body)) => decode(ROUNDS, body),
        other => Err(StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!(
                "round {index} has layout version {:?}, this posd reads {ROUND_LAYOUT_STAKE} and {ROUND_LAYOUT}",
                other.map(|(v, _)| *v)
            ),
        }),
    }
}
