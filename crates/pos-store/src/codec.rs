//! Value encoding: bincode's standard (varint) configuration over serde.

use crate::layout::{META, ROUNDS, ROUND_LAYOUT, ROUND_LAYOUT_STAKE};
use crate::StoreError;
use pos_core::lottery::{Anchor, Candidate, Rule, Secret};
use pos_core::weighting::Weighed;
use pos_core::{Address, ChainSpec, Digest, RoundRecord, Weighting};
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

/// A round record in the layout its height says, in a store whose lottery
/// v2 begins at block `from` (see [`ROUNDS`]; [`decode_round`] reads it back).
pub(crate) fn encode_round_at(from: u64, round: &RoundRecord) -> Vec<u8> {
    if round.index >= from {
        return encode_round(round);
    }
    let mut out = Vec::new();
    let tail = (round.ticket, round.winner);
    with_candidates(&mut out, round, &tail);
    out
}

/// A round record as schema 2 writes it: the layout byte, then bincode:
/// schema 2's record for a stake draw (up to its rule), the whole record
/// for any other.
pub(crate) fn encode_round(round: &RoundRecord) -> Vec<u8> {
    let (ticket, winner, rule) = (round.ticket, round.winner, &round.rule);
    if round.weighting == Weighting::Stake && round.weights.is_empty() {
        let mut out = vec![ROUND_LAYOUT_STAKE];
        with_candidates(&mut out, round, &(ticket, winner, rule));
        return out;
    }
    let mut out = vec![ROUND_LAYOUT];
    let tail = (ticket, winner, rule, &round.weighting, &round.weights);
    with_candidates(&mut out, round, &tail);
    out
}

/// Appends `round`'s index, seed and candidates, then `tail` (its fields
/// after the candidates), as bincode writes a struct of them all: fields
/// one after the other, nothing between. The candidates are written by
/// [`CandidateList`], not serde, which hands bincode an address one byte at
/// a time: 10,000 candidates took a fifth of a round's close.
fn with_candidates(out: &mut Vec<u8>, round: &RoundRecord, tail: &impl Serialize) {
    // Room for small stakes, weights and BPMs, so that the buffer rarely grows.
    out.reserve(64 + round.candidates.len() * 40 + round.weights.len() * 24);
    let config = bincode::config::standard();
    let head = (round.index, &round.seed);
    bincode::serde::encode_into_std_write(head, out, config)
        .and_then(|_| bincode::encode_into_std_write(CandidateList(&round.candidates), out, config))
        .and_then(|_| bincode::serde::encode_into_std_write(tail, out, config))
        .expect("a Vec takes every write");
}

/// Candidates in the bytes serde writes for a `[Candidate]` (its length,
/// then each one's fields), through the same bincode calls but for the
/// address, written as its 32 bytes in one go.
struct CandidateList<'a>(&'a [Candidate]);

impl bincode::Encode for CandidateList<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.len().encode(e)?;
        self.0.iter().try_for_each(|c| {
            c.address.0 .0.encode(e)?;
            c.stake.encode(e)?;
            c.bpm.encode(e)
        })
    }
}

/// A round record's index, seed and candidates, then `T` (its fields after
/// the candidates) up to the end of `bytes`: what [`with_candidates`]
/// wrote, read back the same way (serde around the candidates, bincode's
/// own `Decode` for them: an address in one read, not 32).
fn split_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Head, T), StoreError> {
    let config = bincode::config::standard();
    let corrupt = |e: bincode::error::DecodeError| StoreError::Corrupt {
        tree: ROUNDS,
        detail: e.to_string(),
    };
    let ((index, seed), at): ((u64, Digest), usize) =
        bincode::serde::decode_from_slice(bytes, config).map_err(corrupt)?;
    let (Candidates(candidates), read) =
        bincode::decode_from_slice(&bytes[at..], config).map_err(corrupt)?;
    let tail = decode(ROUNDS, &bytes[at + read..])?;
    Ok(((index, seed, candidates), tail))
}

/// A round record's index, seed and candidates.
type Head = (u64, Digest, Vec<Candidate>);

/// A round record's fields after its candidates, as the whole record lays
/// them out (the older layouts stop before the rule or the weighting).
type Tail = (u128, usize, Rule, Weighting, Vec<Weighed>);

fn assemble(
    (index, seed, candidates): Head,
    (ticket, winner, rule, weighting, weights): Tail,
) -> RoundRecord {
    RoundRecord {
        index,
        seed,
        candidates,
        ticket,
        winner,
        rule,
        weighting,
        weights,
    }
}

/// Candidates decoded from the bytes [`CandidateList`] (and serde) write.
struct Candidates(Vec<Candidate>);

impl<C> bincode::Decode<C> for Candidates {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let len = usize::decode(d)?;
        // A damaged length must not reserve memory it cannot fill: beyond
        // this much the list grows only as candidates are really read.
        let mut out = Vec::with_capacity(len.min(MAX_CANDIDATES_RESERVED));
        for _ in 0..len {
            out.push(Candidate {
                address: Address(Digest(<[u8; 32]>::decode(d)?)),
                stake: u64::decode(d)?,
                bpm: u32::decode(d)?,
            });
        }
        Ok(Candidates(out))
    }
}

/// Most candidates a decoded length reserves room for before reading them.
const MAX_CANDIDATES_RESERVED: usize = 1 << 16;

/// The record of block `index`'s round, in the layout its height says
/// (see [`ROUNDS`]): schema 1's below the anchor, versioned from it.
pub(crate) fn decode_round(
    anchor: Option<&Anchor>,
    index: u64,
    bytes: &[u8],
) -> Result<RoundRecord, StoreError> {
    if anchor.is_none_or(|a| index < a.from) {
        let (head, (ticket, winner)) = split_decode(bytes)?;
        let tail = (ticket, winner, Rule::V1, Weighting::Stake, Vec::new());
        return Ok(assemble(head, tail));
    }
    match bytes.split_first() {
        Some((&ROUND_LAYOUT_STAKE, body)) => {
            let (head, (ticket, winner, rule)) = split_decode(body)?;
            Ok(assemble(head, (ticket, winner, rule, Weighting::Stake, Vec::new())))
        }
        Some((&ROUND_LAYOUT, body)) => {
            let (head, tail) = split_decode(body)?;
            Ok(assemble(head, tail))
        }
        other => Err(StoreError::Corrupt {
            tree: ROUNDS,
            detail: format!(
                "round {index} has layout version {:?}, this posd reads {ROUND_LAYOUT_STAKE} and {ROUND_LAYOUT}",
                other.map(|(v, _)| *v)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::weighting::Why;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A round record as schema 1 defined it: the oracle for its bytes.
    #[derive(Serialize)]
    struct SchemaV1<'a> {
        index: u64,
        seed: &'a Digest,
        candidates: &'a [Candidate],
        ticket: u128,
        winner: usize,
    }

    /// A stake-drawn round record as schema 2 defined it.
    #[derive(Serialize)]
    struct SchemaV2<'a> {
        index: u64,
        seed: &'a Digest,
        candidates: &'a [Candidate],
        ticket: u128,
        winner: usize,
        rule: &'a Rule,
    }

    /// A number as wide as bincode's varint gets: one byte, or a marker and 2, 4, 8.
    fn any_width(rng: &mut StdRng) -> u64 {
        match rng.gen_range(0..4) {
            0 => rng.gen_range(0..251),
            1 => rng.gen_range(251..=u16::MAX as u64),
            2 => rng.gen_range(1 << 16..=u32::MAX as u64),
            _ => rng.gen_range(1 << 32..=u64::MAX),
        }
    }

    fn record(rng: &mut StdRng) -> RoundRecord {
        let candidates: Vec<Candidate> = (0..rng.gen_range(0..40))
            .map(|_| Candidate {
                address: Address(Digest(rng.gen())),
                stake: any_width(rng),
                bpm: any_width(rng) as u32,
            })
            .collect();
        let (weighting, why) = match rng.gen_range(0..3) {
            0 => (Weighting::Stake, None),
            1 => (Weighting::StakeAge { age_window: 10 }, Some(Why::Age(3))),
            _ => (
                Weighting::StakeWork {
                    work_bits: 8,
                    work_bonus_max: 4,
                },
                Some(Why::Work {
                    nonce: Some(any_width(rng)),
                    zeros: 9,
                }),
            ),
        };
        let weights = why.map_or_else(Vec::new, |why| {
            let weight = u128::from(any_width(rng)) << rng.gen_range(0..64);
            vec![Weighed { weight, why }; candidates.len()]
        });
        RoundRecord {
            index: any_width(rng) >> 1,
            seed: Digest(rng.gen()),
            winner: any_width(rng) as usize,
            candidates,
            ticket: u128::from(any_width(rng)) << rng.gen_range(0..64),
            rule: if rng.gen() {
                Rule::V1
            } else {
                Rule::V2 {
                    reveal: Secret(rng.gen()),
                    next_commitment: Digest(rng.gen()),
                }
            },
            weighting,
            weights,
        }
    }

    #[test]
    fn round_records_keep_the_bytes_serde_wrote() {
        let mut rng = StdRng::seed_from_u64(26);
        for _ in 0..500 {
            let r = record(&mut rng);
            let v1 = SchemaV1 {
                index: r.index,
                seed: &r.seed,
                candidates: &r.candidates,
                ticket: r.ticket,
                winner: r.winner,
            };
            assert_eq!(encode_round_at(r.index + 1, &r), encode(&v1));
            let mut v2 = vec![ROUND_LAYOUT];
            v2.extend(encode(&r));
            if r.weighting == Weighting::Stake && r.weights.is_empty() {
                v2 = vec![ROUND_LAYOUT_STAKE];
                v2.extend(encode(&SchemaV2 {
                    index: r.index,
                    seed: &r.seed,
                    candidates: &r.candidates,
                    ticket: r.ticket,
                    winner: r.winner,
                    rule: &r.rule,
                }));
            }
            assert_eq!(encode_round(&r), v2);
            assert_eq!(encode_round_at(0, &r), v2);
            let anchor = Anchor {
                from: 0,
                commitment: Digest([0; 32]),
            };
            assert_eq!(decode_round(Some(&anchor), r.index, &v2).unwrap(), r);
            let as_v1 = RoundRecord {
                rule: Rule::V1,
                weighting: Weighting::Stake,
                weights: Vec::new(),
                ..r.clone()
            };
            assert_eq!(decode_round(None, r.index, &encode(&v1)).unwrap(), as_v1);
        }
    }

    #[test]
    fn damaged_round_records_are_refused() {
        let mut rng = StdRng::seed_from_u64(27);
        let anchor = Anchor {
            from: 0,
            commitment: Digest([0; 32]),
        };
        for _ in 0..40 {
            let bytes = encode_round(&record(&mut rng));
            for cut in 0..bytes.len() {
                assert!(decode_round(Some(&anchor), 1, &bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_round(Some(&anchor), 1, &longer).is_err());
        }
        // A count of candidates no record could hold, then nothing.
        let mut huge = vec![ROUND_LAYOUT_STAKE, 1];
        huge.extend([0; 32]);
        huge.extend([253, 255, 255, 255, 255, 255, 255, 255, 15]);
        let err = decode_round(Some(&anchor), 1, &huge).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { tree: ROUNDS, .. }),
            "{err}"
        );
    }
}
