//! How much each candidate counts in a draw (SPEC §12): the chain's
//! weighting rule, fixed at genesis, and the pure functions that give every
//! candidate an integer weight the draw then uses in place of its stake.
//!
//! The functions that need candidates and round records (`ages`, `weigh`)
//! live in [`crate::lottery`], which draws over their weights.
//!
//! - `stake`: weight = stake (the draw is byte for byte the original one).
//! - `stake_age`: weight = stake × (1 + a), a = how many of the previous
//!   `age_window` rounds had the validator as a candidate, counted only after
//!   its latest win among them. Only rounds it proposed in count, so age
//!   cannot be hoarded while offline.
//! - `stake_work`: z = leading zero bits of SHA-256 of the ASCII text
//!   `posd-work-v1|<prev hash hex>|<index>|<address hex>|<bpm>|<nonce>`;
//!   weight = stake × 2^min(z − work_bits, work_bonus_max) when z ≥ work_bits,
//!   else stake. The work binds the round, the proposer and its BPM (nothing to
//!   precompute) and never enters the seed (nothing to grind).
//!
//! Weights are u128: a u64 stake times at most 1001 or 2^16 cannot overflow.

use crate::digest::{Address, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::ops::RangeInclusive;

/// Accepted `age_window` values (rounds).
pub const AGE_WINDOW: RangeInclusive<u32> = 1..=1000;
/// Accepted `work_bits` values.
pub const WORK_BITS: RangeInclusive<u32> = 1..=48;
/// Accepted `work_bonus_max` values (doublings).
pub const WORK_BONUS_MAX: RangeInclusive<u32> = 0..=16;
/// The defaults of the parameters.
pub const DEFAULT_AGE_WINDOW: u32 = 10;
pub const DEFAULT_WORK_BITS: u32 = 20;
pub const DEFAULT_WORK_BONUS_MAX: u32 = 4;
/// Domain tag of the work text.
pub const WORK_DOMAIN: &str = "posd-work-v1";

/// A chain's weighting rule with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    #[default]
    Stake,
    StakeAge {
        age_window: u32,
    },
    StakeWork {
        work_bits: u32,
        work_bonus_max: u32,
    },
}

/// A weighting parameter out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} must be from {min} to {max}, not {value}")]
pub struct RangeError {
    pub key: &'static str,
    pub value: u32,
    pub min: u32,
    pub max: u32,
}

fn in_range(key: &'static str, value: u32, range: &RangeInclusive<u32>) -> Result<(), RangeError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(RangeError {
        key,
        value,
        min: *range.start(),
        max: *range.end(),
    })
}

impl Weighting {
    /// The names `lottery_weighting` accepts.
    pub const NAMES: [&'static str; 3] = ["stake", "stake_age", "stake_work"];

    /// The rule called `name`, with these parameters (each checked against
    /// its range, whether the rule uses it or not).
    pub fn from_parts(
        name: &str,
        age_window: u32,
        work_bits: u32,
        work_bonus_max: u32,
    ) -> Result<Weighting, String> {
        in_range("age_window", age_window, &AGE_WINDOW).map_err(|e| e.to_string())?;
        in_range("work_bits", work_bits, &WORK_BITS).map_err(|e| e.to_string())?;
        in_range("work_bonus_max", work_bonus_max, &WORK_BONUS_MAX).map_err(|e| e.to_string())?;
        match name {
            "stake" => Ok(Weighting::Stake),
            "stake_age" => Ok(Weighting::StakeAge { age_window }),
            "stake_work" => Ok(Weighting::StakeWork {
                work_bits,
                work_bonus_max,
            }),
            other => Err(format!(
                "unknown weighting '{other}', expected one of: {}",
                Weighting::NAMES.join(", ")
            )),
        }
    }

    /// Whether the parameters are in their ranges (a stored or imported rule).
    pub fn check(&self) -> Result<(), RangeError> {
        match *self {
            Weighting::Stake => Ok(()),
            Weighting::StakeAge { age_window } => in_range("age_window", age_window, &AGE_WINDOW),
            Weighting::StakeWork {
                work_bits,
                work_bonus_max,
            } => {
                in_range("work_bits", work_bits, &WORK_BITS)?;
                in_range("work_bonus_max", work_bonus_max, &WORK_BONUS_MAX)
            }
        }
    }

    /// The rule's name, as config and JSON spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Weighting::Stake => "stake",
            Weighting::StakeAge { .. } => "stake_age",
            Weighting::StakeWork { .. } => "stake_work",
        }
    }

    /// How many previous round records a draw under this rule reads.
    pub fn history(&self) -> u64 {
        match *self {
            Weighting::StakeAge { age_window } => age_window as u64,
            _ => 0,
        }
    }

    /// What goes into the seed's domain string after the lottery version:
    /// nothing under `stake` (so its seeds stay what they were).
    pub(crate) fn seed_tag(&self) -> Option<&'static str> {
        match self {
            Weighting::Stake => None,
            other => Some(other.name()),
        }
    }

    /// The weight and reason of a candidate (address, stake, BPM) given its
    /// `nonce` (judged by `work`, the round's work check) and its `age` (see
    /// `lottery::ages`).
    pub(crate) fn weigh(
        &self,
        work: &WorkRound,
        (address, stake, bpm): (&Address, u64, u32),
        nonce: Option<u64>,
        age: u32,
    ) -> Weighed {
        let (stake_u64, stake) = (stake, stake as u128);
        match *self {
            Weighting::Stake => Weighed {
                weight: stake,
                why: Why::Stake,
            },
            Weighting::StakeAge { .. } => Weighed {
                weight: stake * (1 + age as u128),
                why: Why::Age(age),
            },
            Weighting::StakeWork {
                work_bits,
                work_bonus_max,
            } => {
                let zeros = nonce.map_or(0, |n| work.zeros(address, bpm, n));
                Weighed {
                    weight: work_weight(stake_u64, zeros, work_bits, work_bonus_max),
                    why: Why::Work { nonce, zeros },
                }
            }
        }
    }
}

impl fmt::Display for Weighting {
    /// `stake`, `stake_age (age_window 10)`, `stake_work (work_bits 20, work_bonus_max 4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weighting::Stake => f.write_str("stake"),
            Weighting::StakeAge { age_window } => write!(f, "stake_age (age_window {age_window})"),
            Weighting::StakeWork {
                work_bits,
                work_bonus_max,
            } => write!(
                f,
                "stake_work (work_bits {work_bits}, work_bonus_max {work_bonus_max})"
            ),
        }
    }
}

/// Why a candidate has its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// weight = stake.
    Stake,
    /// weight = stake × (1 + age).
    Age(u32),
    /// The proposal's nonce (if any) and the leading zero bits it gave.
    Work { nonce: Option<u64>, zeros: u32 },
}

/// One candidate's weight in a draw and what made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weighed {
    pub weight: u128,
    pub why: Why,
}

/// The ASCII text whose SHA-256 a nonce is judged by.
pub fn work_text(
    prev_hash: &Digest,
    index: u64,
    address: &Address,
    bpm: u32,
    nonce: u64,
) -> String {
    format!(
        "{WORK_DOMAIN}|{}|{index}|{}|{bpm}|{nonce}",
        prev_hash.to_hex(),
        address.0.to_hex()
    )
}

/// Leading zero bits of SHA-256 of [`work_text`] (0 to 256).
pub fn work_zeros(prev_hash: &Digest, index: u64, address: &Address, bpm: u32, nonce: u64) -> u32 {
    WorkRound::new(prev_hash, index).zeros(address, bpm, nonce)
}

/// The work check of one round: SHA-256 run over the text's fields common
/// to the round (domain, previous hash, index) once, each nonce's hash then
/// finished from that state with no allocation. A round's draw checks every
/// candidate's nonce, so this halves the hashing and drops the formatting.
#[derive(Clone)]
pub struct WorkRound {
    prefix: Sha256,
}

impl WorkRound {
    pub fn new(prev_hash: &Digest, index: u64) -> Self {
        let mut prefix = Sha256::new();
        let mut hex = [0u8; 64];
        prefix.update(WORK_DOMAIN.as_bytes());
        prefix.update(b"|");
        prefix.update(hex_of(&prev_hash.0, &mut hex));
        prefix.update(b"|");
        prefix.update(decimal(index, &mut [0; 20]));
        prefix.update(b"|");
        WorkRound { prefix }
    }

    /// [`work_zeros`] of this round.
    pub fn zeros(&self, address: &Address, bpm: u32, nonce: u64) -> u32 {
        self.proposal(address, bpm).zeros(nonce)
    }

    /// The state for one proposer and BPM: all of the text but the nonce.
    pub fn proposal(&self, address: &Address, bpm: u32) -> WorkHasher {
        let mut prefix = self.prefix.clone();
        prefix.update(hex_of(&address.0 .0, &mut [0; 64]));
        prefix.update(b"|");
        prefix.update(decimal(bpm.into(), &mut [0; 20]));
        prefix.update(b"|");
        WorkHasher { prefix }
    }
}

/// One proposal's work text with all but the nonce already hashed: that
/// part fills two of the three SHA-256 blocks, so trying a nonce costs one
/// block (what `posctl work` runs in its loop).
#[derive(Clone)]
pub struct WorkHasher {
    prefix: Sha256,
}

impl WorkHasher {
    pub fn new(prev_hash: &Digest, index: u64, address: &Address, bpm: u32) -> WorkHasher {
        WorkRound::new(prev_hash, index).proposal(address, bpm)
    }

    /// Leading zero bits of SHA-256 of the work text ending in `nonce`.
    pub fn zeros(&self, nonce: u64) -> u32 {
        let mut h = self.prefix.clone();
        h.update(decimal(nonce, &mut [0; 20]));
        leading_zeros(&Digest(h.finalize().into()))
    }
}

/// Lowercase hex of 32 bytes, written into `out`.
fn hex_of<'a>(bytes: &[u8; 32], out: &'a mut [u8; 64]) -> &'a [u8] {
    hex::encode_to_slice(bytes, out).expect("64 hex digits for 32 bytes");
    out
}

/// `n` in decimal ASCII, written at the end of `out` (20 digits hold a u64).
fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut start = out.len();
    loop {
        start -= 1;
        out[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[start..];
        }
    }
}

/// Leading zero bits of a digest.
pub fn leading_zeros(d: &Digest) -> u32 {
    let mut zeros = 0;
    for byte in d.0 {
        zeros += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    zeros
}

/// stake × 2^min(zeros − work_bits, work_bonus_max) when zeros ≥ work_bits, else stake.
pub fn work_weight(stake: u64, zeros: u32, work_bits: u32, work_bonus_max: u32) -> u128 {
    let bonus = zeros
        .checked_sub(work_bits)
        .map_or(0, |extra| extra.min(work_bonus_max).min(64));
    (stake as u128) << bonus
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address(Digest([n; 32]))
    }

    /// Computed independently (Python hashlib) from the module docs.
    #[test]
    fn pinned_work() {
        let prev = Digest::of(b"posd");
        let text = work_text(&prev, 9, &addr(1), 72, 0);
        assert_eq!(
            text,
            format!("posd-work-v1|{}|9|{}|72|0", prev.to_hex(), "01".repeat(32))
        );
        assert_eq!(leading_zeros(&Digest([0; 32])), 256);
        assert_eq!(leading_zeros(&Digest([0x0f; 32])), 4);
        let mut d = [0xff; 32];
        d[0] = 0;
        d[1] = 0x20;
        assert_eq!(leading_zeros(&Digest(d)), 10);
    }

    /// The round's and the proposal's precomputed states give what hashing
    /// the whole text gives (nonces across a change of digit count too).
    #[test]
    fn work_round_hashes_the_work_text() {
        let prev = Digest::of(b"posd");
        for (index, bpm, nonce) in [
            (0, 0, 0),
            (9, 72, 1),
            (9, 72, 10),
            (9, 72, 18_484),
            (10, 200, 160),
            (u64::MAX, u32::MAX, u64::MAX),
        ] {
            for a in [addr(0), addr(0xab)] {
                let text = work_text(&prev, index, &a, bpm, nonce);
                let whole = leading_zeros(&Digest::of(text.as_bytes()));
                assert_eq!(
                    WorkRound::new(&prev, index).zeros(&a, bpm, nonce),
                    whole,
                    "{text}"
                );
            }
        }
        // A nonce with 8 leading zero bits, found by search, so the check sees more than 0.
        let round = WorkRound::new(&prev, 3);
        let nonce = (0..).find(|&n| round.zeros(&addr(1), 72, n) >= 8).unwrap();
        let text = work_text(&prev, 3, &addr(1), 72, nonce);
        assert!(Digest::of(text.as_bytes()).0[0] == 0, "{text}");
    }

    #[test]
    fn work_weight_is_capped_and_gated() {
        assert_eq!(work_weight(100, 19, 20, 4), 100);
        assert_eq!(work_weight(100, 20, 20, 4), 100);
        assert_eq!(work_weight(100, 21, 20, 4), 200);
        assert_eq!(work_weight(100, 23, 20, 4), 800);
        assert_eq!(work_weight(100, 200, 20, 4), 1600);
        assert_eq!(work_weight(100, 200, 20, 0), 100);
        assert_eq!(work_weight(u64::MAX, 256, 1, 16), (u64::MAX as u128) << 16);
    }
    #[test]
    fn parameters_are_checked() {
        assert_eq!(
            Weighting::from_parts("stake_age", 10, 20, 4),
            Ok(Weighting::StakeAge { age_window: 10 })
        );
        assert!(Weighting::from_parts("stake_age", 0, 20, 4)
            .unwrap_err()
            .contains("age_window must be from 1 to 1000"));
        assert!(Weighting::from_parts("stake", 10, 49, 4).is_err());
        assert!(Weighting::from_parts("stake", 10, 20, 17).is_err());
        assert!(Weighting::from_parts("work", 10, 20, 4)
            .unwrap_err()
            .contains("expected one of: stake, stake_age, stake_work"));
        assert!(Weighting::StakeWork {
            work_bits: 0,
            work_bonus_max: 1
        }
        .check()
        .is_err());
    }
}
