//! The stake-weighted lottery: who proposes the next block.
//!
//! Randomness is a deterministic stream derived from a seed, so anyone
//! holding a block's [`RoundRecord`] can replay its draw:
//!
//! 1. the seed of the round that makes block `index` on top of `prev_hash`:
//!    - lottery v1 (schema 1): `SHA-256("posd-lottery-v1" || prev_hash (32 raw bytes) || index (u64 BE))`;
//!    - lottery v2 (schema 2): `SHA-256("posd-lottery-v2" || prev_hash || index (u64 BE) || reveal)`,
//!      where `reveal` is the round's 32-byte [`Secret`], whose commitment
//!      `SHA-256("posd-lottery-v2-commit" || reveal)` was published before the
//!      round opened (stored with the previous block's round, or the chain's
//!      [`Anchor`] for the first v2 round); the round commits to the next secret in turn;
//! 2. word `i` of the stream = the first 16 bytes, big-endian, of
//!    `SHA-256(seed || i (u64 BE))`, for i = 0, 1, 2, ...
//! 3. candidates are sorted by address; `total` = the sum of their weights
//!    (under the chain's [`Weighting`]; under `stake` weight = stake);
//!    a ticket uniform in `[0, total)` is drawn by rejection (words at or
//!    above the largest multiple of `total` are skipped, never reduced modulo);
//! 4. the winner is the first candidate whose running weight sum exceeds the ticket.
//!
//! Under `stake_age` and `stake_work` the seed's domain string is the
//! version's followed by `/` and the rule's name (`posd-lottery-v2/stake_age`),
//! so a draw under one rule never replays under another; `stake` keeps the
//! plain domain, so its seeds, draws and vectors are unchanged.
//!
//! Under v1 anyone can compute a draw as soon as the previous block is known,
//! so a party with several validators can choose whom to keep in a round.
//! Under v2 nobody but the node knows the seed until the round closes, and
//! anyone can check afterwards that the reveal matches what was committed.
//!
//! Cost (see [`roster`]): the candidates themselves plus one sum per
//! 1,024 of them, one sort (skipped when they come sorted), one pass checking
//! the order and summing the stakes (fused with building the table when a
//! [`Roster`] is pushed to) and a scan of the one block holding the ticket,
//! whatever the stake sizes (u128 sums cannot overflow for u64 stakes and
//! < 2^64 candidates). Weights add one pass (one SHA-256 per nonce under
//! `stake_work`; one merge per record of the window under `stake_age`).

pub mod roster;

use crate::digest::{Address, Digest};
use crate::weighting::{Weighed, Weighting, WorkRound};
use roster::{replay_in_place, Roster, Round};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Domain tag of the v1 seed, so no other SHA-256 use in posd can collide with it.
pub const SEED_DOMAIN: &[u8] = b"posd-lottery-v1";
/// Domain tag of the v2 seed.
pub const SEED_DOMAIN_V2: &[u8] = b"posd-lottery-v2";
/// Domain tag of a commitment to a round's secret.
pub const COMMIT_DOMAIN: &[u8] = b"posd-lottery-v2-commit";

/// Why a draw cannot be made or does not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LotteryError {
    #[error("no candidates")]
    NoCandidates,
    #[error("candidate {0} has zero stake")]
    ZeroStake(Address),
    #[error("candidate {0} appears twice")]
    Duplicate(Address),
    #[error("stored draw does not replay: {0}")]
    Mismatch(&'static str),
    #[error("drawn by lottery v{found}, but this block's height uses v{expected}")]
    WrongRule { expected: u32, found: u32 },
    #[error("the revealed secret does not match the commitment made before the round opened")]
    RevealMismatch,
    #[error("the round before committed to no secret for this one")]
    NoCommitment,
    #[error("drawn under weighting {found}, but this chain weighs by {expected}")]
    WrongWeighting {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the candidates' weights overflow 128 bits")]
    Overflow,
}

/// The v1 seed of the round that produces block `index` on top of `prev_hash`.
pub fn seed_v1(prev_hash: &Digest, index: u64) -> Digest {
    seed_in(SEED_DOMAIN, None, prev_hash, index, None)
}

/// The v2 seed: v1's inputs and the round's revealed secret.
pub fn seed_v2(prev_hash: &Digest, index: u64, reveal: &Secret) -> Digest {
    seed_in(SEED_DOMAIN_V2, None, prev_hash, index, Some(reveal))
}

/// A seed under `domain`, followed by `/<tag>` for a weighting other than stake.
fn seed_in(
    domain: &[u8],
    tag: Option<&str>,
    prev_hash: &Digest,
    index: u64,
    reveal: Option<&Secret>,
) -> Digest {
    let mut h = Sha256::new();
    h.update(domain);
    if let Some(tag) = tag {
        h.update(b"/");
        h.update(tag.as_bytes());
    }
    h.update(prev_hash.0);
    h.update(index.to_be_bytes());
    if let Some(reveal) = reveal {
        h.update(reveal.0);
    }
    Digest(h.finalize().into())
}

/// A round's secret input to the v2 seed: 32 bytes the proposer draws from
/// its OS RNG (pos-core takes it as an input), committed to before the round
/// opens and revealed in the round's record when it closes. Until then only
/// the node's store holds it. `Debug` hides it, so a log line cannot leak it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(#[serde(with = "crate::digest::hex32")] pub [u8; 32]);

impl Secret {
    /// `SHA-256("posd-lottery-v2-commit" || secret)`: what is published before the round opens.
    pub fn commitment(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(COMMIT_DOMAIN);
        h.update(self.0);
        Digest(h.finalize().into())
    }

    /// Hex, for showing a secret once it has been revealed.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which seed rule drew a round, with what v2 adds to the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// Schema 1: the seed is the chain's alone (predictable).
    V1,
    /// Schema 2: the seed mixes in `reveal`, and the round commits to the
    /// next round's secret with `next_commitment`.
    V2 {
        reveal: Secret,
        next_commitment: Digest,
    },
}

impl Rule {
    /// The lottery version, as the docs and `posctl` name it.
    pub fn version(&self) -> u32 {
        match self {
            Rule::V1 => 1,
            Rule::V2 { .. } => 2,
        }
    }

    /// The secret this round revealed (v2 only).
    pub fn reveal(&self) -> Option<&Secret> {
        match self {
            Rule::V1 => None,
            Rule::V2 { reveal, .. } => Some(reveal),
        }
    }

    /// What this round committed the next one to (v2 only).
    pub fn next_commitment(&self) -> Option<Digest> {
        match self {
            Rule::V1 => None,
            Rule::V2 {
                next_commitment, ..
            } => Some(*next_commitment),
        }
    }

    /// The seed of the round of block `index` on `prev_hash` drawn under `weighting`.
    pub fn seed(&self, weighting: &Weighting, prev_hash: &Digest, index: u64) -> Digest {
        let tag = weighting.seed_tag();
        match self {
            Rule::V1 => seed_in(SEED_DOMAIN, tag, prev_hash, index, None),
            Rule::V2 { reveal, .. } => seed_in(SEED_DOMAIN_V2, tag, prev_hash, index, Some(reveal)),
        }
    }
}

/// Where a chain's v2 lottery begins: `from` is the first block drawn by v2
/// and `commitment` what its round had to reveal, stored when the chain was
/// created (`from` = 1) or migrated from schema 1 (`from` = the tip then + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub from: u64,
    pub commitment: Digest,
}

/// The commitment block `index`'s round must reveal a preimage of: none
/// under v1 (no anchor, or before it), the anchor's at its first block, and
/// after that `previous`, what the round of block `index - 1` committed to.
pub fn expected_commitment(
    anchor: Option<&Anchor>,
    index: u64,
    previous: Option<Digest>,
) -> Result<Option<Digest>, LotteryError> {
    match anchor {
        Some(a) if index == a.from => Ok(Some(a.commitment)),
        Some(a) if index > a.from => previous.map(Some).ok_or(LotteryError::NoCommitment),
        _ => Ok(None),
    }
}

/// The SHA-256 counter-mode stream described in the module docs. Written out
/// here rather than taken from `rand` so draws never change with a crate version.
#[derive(Debug, Clone)]
pub struct ShaStream {
    seed: Digest,
    counter: u64,
}

impl ShaStream {
    pub fn new(seed: Digest) -> Self {
        ShaStream { seed, counter: 0 }
    }

    pub fn next_u128(&mut self) -> u128 {
        let mut h = Sha256::new();
        h.update(self.seed.0);
        h.update(self.counter.to_be_bytes());
        self.counter += 1;
        let out: [u8; 32] = h.finalize().into();
        let mut word = [0u8; 16];
        word.copy_from_slice(&out[..16]);
        u128::from_be_bytes(word)
    }

    /// Uniform in `[0, n)` for `n > 0`, by rejection sampling.
    pub fn below(&mut self, n: u128) -> u128 {
        assert!(n > 0, "below(0) has no value");
        // 2^128 mod n: that many top values would make low tickets likelier.
        let rejected = (u128::MAX % n + 1) % n;
        loop {
            let x = self.next_u128();
            if x <= u128::MAX - rejected {
                return x % n;
            }
        }
    }
}

/// One validator in a round: its stake when the round closed and its proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub address: Address,
    pub stake: u64,
    pub bpm: u32,
}

/// Everything needed to replay a round's draw; stored beside its block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Index of the block this round produced.
    pub index: u64,
    pub seed: Digest,
    /// Sorted by address, as drawn.
    pub candidates: Vec<Candidate>,
    /// The ticket in `[0, total stake)`.
    pub ticket: u128,
    /// Position of the winner in `candidates`.
    pub winner: usize,
    /// How the seed was made (and, from v2, the reveal and next commitment).
    pub rule: Rule,
    /// The chain's weighting rule the draw used.
    #[serde(default)]
    pub weighting: Weighting,
    /// Each candidate's weight and why, in `candidates`' order; empty under
    /// `stake` (weight = stake).
    #[serde(default)]
    pub weights: Vec<Weighed>,
}

impl RoundRecord {
    pub fn winner(&self) -> &Candidate {
        &self.candidates[self.winner]
    }

    pub fn total_stake(&self) -> u128 {
        self.candidates.iter().map(|c| c.stake as u128).sum()
    }

    /// Candidate `i`'s weight in the draw (its stake under `stake`).
    pub fn weight(&self, i: usize) -> u128 {
        match self.weights.get(i) {
            Some(w) => w.weight,
            None => self.candidates.get(i).map_or(0, |c| c.stake as u128),
        }
    }

    /// The sum of the candidates' weights (saturating: a stored record's
    /// weights are checked by [`RoundRecord::replay_after`]).
    pub fn total_weight(&self) -> u128 {
        (0..self.candidates.len()).fold(0u128, |sum, i| sum.saturating_add(self.weight(i)))
    }

    /// The nonces the candidates proposed with, in their order (`stake_work`).
    pub fn nonces(&self) -> Vec<Option<u64>> {
        use crate::weighting::Why;
        self.weights
            .iter()
            .map(|w| match w.why {
                Why::Work { nonce, .. } => nonce,
                _ => None,
            })
            .collect()
    }

    /// [`RoundRecord::replay_after`] with no previous rounds: enough for
    /// every rule but `stake_age`.
    pub fn replay(
        &self,
        prev_hash: &Digest,
        commitment: Option<&Digest>,
    ) -> Result<(), LotteryError> {
        self.replay_after(prev_hash, commitment, &[])
    }

    /// Re-runs the draw from `prev_hash` and checks every stored field.
    /// `commitment` is what the round committed to before it opened (see
    /// [`expected_commitment`]): `None` for a v1 round; under v2 the reveal
    /// must be its preimage. `history`: the previous rounds' records in
    /// ascending order (at least the last `age_window` under `stake_age`),
    /// from which every weight is recomputed.
    pub fn replay_after(
        &self,
        prev_hash: &Digest,
        commitment: Option<&Digest>,
        history: &[RoundRecord],
    ) -> Result<(), LotteryError> {
        match (&self.rule, commitment) {
            (Rule::V1, None) => {}
            (Rule::V2 { reveal, .. }, Some(c)) => {
                if reveal.commitment() != *c {
                    return Err(LotteryError::RevealMismatch);
                }
            }
            (rule, _) => {
                return Err(LotteryError::WrongRule {
                    expected: if commitment.is_some() { 2 } else { 1 },
                    found: rule.version(),
                })
            }
        }
        let aligned = match self.weighting {
            Weighting::Stake => self.weights.is_empty(),
            _ => self.weights.len() == self.candidates.len(),
        };
        if !aligned {
            return Err(LotteryError::Mismatch("weights"));
        }
        let round = Round {
            prev_hash,
            index: self.index,
            weighting: self.weighting,
            history,
        };
        // Stored candidates in strict address order (the only order a draw
        // leaves) replay in place; others go through a full draw, whose
        // error or reordering says what is wrong.
        let nonces = self.nonces();
        let mut weights = Vec::new();
        let (seed, ticket, winner) =
            match replay_in_place(&round, &self.rule, &self.candidates, &nonces, &mut weights) {
                Some(drawn) => drawn?,
                None => {
                    let ballot = Ballot {
                        weighting: self.weighting,
                        candidates: self.candidates.clone(),
                        nonces,
                        history,
                    };
                    let again = draw_weighted(prev_hash, self.index, self.rule.clone(), ballot)?;
                    if again.seed == self.seed && again.candidates != self.candidates {
                        return Err(LotteryError::Mismatch("candidate order"));
                    }
                    weights = again.weights;
                    (again.seed, again.ticket, again.winner)
                }
            };
        let fields: [(&'static str, bool); 4] = [
            ("seed", seed == self.seed),
            ("weights", weights == self.weights),
            ("ticket", ticket == self.ticket),
            ("winner", winner == self.winner),
        ];
        match fields.iter().find(|(_, same)| !same) {
            Some((what, _)) => Err(LotteryError::Mismatch(what)),
            None => Ok(()),
        }
    }
}

/// What a draw weighs: the chain's rule, the candidates, the nonces they
/// proposed with (aligned with `candidates`, or empty: none) and the previous
/// rounds' records in ascending order (read under `stake_age` only).
#[derive(Debug, Clone)]
pub struct Ballot<'a> {
    pub weighting: Weighting,
    pub candidates: Vec<Candidate>,
    pub nonces: Vec<Option<u64>>,
    pub history: &'a [RoundRecord],
}

impl Ballot<'_> {
    /// Candidates weighed by stake alone.
    pub fn stake(candidates: Vec<Candidate>) -> Ballot<'static> {
        Ballot {
            weighting: Weighting::Stake,
            candidates,
            nonces: Vec::new(),
            history: &[],
        }
    }
}

/// Draws the proposer of block `index` on top of `prev_hash` by stake, seeded by `rule`.
pub fn draw(
    prev_hash: &Digest,
    index: u64,
    rule: Rule,
    candidates: Vec<Candidate>,
) -> Result<RoundRecord, LotteryError> {
    draw_weighted(prev_hash, index, rule, Ballot::stake(candidates))
}

/// Draws the proposer of block `index` on top of `prev_hash`, seeded by
/// `rule`, over the weights `ballot`'s rule gives its candidates.
pub fn draw_weighted(
    prev_hash: &Digest,
    index: u64,
    rule: Rule,
    ballot: Ballot<'_>,
) -> Result<RoundRecord, LotteryError> {
    let Ballot {
        weighting,
        candidates,
        nonces,
        history,
    } = ballot;
    if candidates.is_empty() {
        return Err(LotteryError::NoCandidates);
    }
    if !nonces.is_empty() && nonces.len() != candidates.len() {
        return Err(LotteryError::Mismatch("one nonce per candidate"));
    }
    Roster::of(candidates, nonces).draw(prev_hash, index, rule, weighting, history)
}

/// The age of each of `candidates` (sorted by address) in the round of block
/// `index`: over the records of blocks `index − window .. index` in
/// `history` (ascending index; others are ignored), one more for each round
/// it was a candidate in, back to zero at each round it won. One merge per
/// record: O(window × candidates), whatever the chain's length.
pub fn ages(
    index: u64,
    window: u32,
    history: &[RoundRecord],
    candidates: &[Candidate],
) -> Vec<u32> {
    let mut age = Vec::new();
    ages_into(&mut age, index, window, history, candidates);
    age
}

/// [`ages`] into `age`, whose memory is reused.
fn ages_into(
    age: &mut Vec<u32>,
    index: u64,
    window: u32,
    history: &[RoundRecord],
    candidates: &[Candidate],
) {
    let first = index.saturating_sub(window as u64);
    let records: Vec<&RoundRecord> = history
        .iter()
        .filter(|r| r.index >= first && r.index < index)
        .collect();
    // One cursor per record, all moving forward with the candidates: one
    // pass, each age kept in a register until it is final.
    let mut cursors = vec![0usize; records.len()];
    age.clear();
    age.extend(candidates.iter().map(|c| {
        let mut a = 0u32;
        for (record, j) in records.iter().zip(cursors.iter_mut()) {
            let theirs = &record.candidates;
            // Equality first: the same validators tend to propose round
            // after round.
            while let Some(t) = theirs.get(*j) {
                if t.address == c.address {
                    // A stored record's candidates are unique (its replay
                    // checked their strict order): its winner is the one at
                    // its winner's position.
                    a = if *j == record.winner { 0 } else { a + 1 };
                    *j += 1;
                    break;
                }
                if t.address > c.address {
                    break;
                }
                *j += 1;
            }
        }
        a
    }));
}

/// The weights of `candidates` (sorted by address) in the round of block
/// `index` on `prev_hash`: `nonces` aligned with them (or empty: none),
/// `history` the previous rounds' records (read under `stake_age` only).
pub fn weigh(
    weighting: &Weighting,
    prev_hash: &Digest,
    index: u64,
    candidates: &[Candidate],
    nonces: &[Option<u64>],
    history: &[RoundRecord],
) -> Vec<Weighed> {
    let round = Round {
        prev_hash,
        index,
        weighting: *weighting,
        history,
    };
    let mut weights = Vec::new();
    weigh_into(&mut weights, &mut Vec::new(), &round, candidates, nonces);
    weights
}

/// [`weigh`] into `weights`, with `ages` as scratch: both keep their memory.
pub(crate) fn weigh_into(
    weights: &mut Vec<Weighed>,
    ages: &mut Vec<u32>,
    round: &Round<'_>,
    candidates: &[Candidate],
    nonces: &[Option<u64>],
) {
    ages.clear();
    if let Weighting::StakeAge { age_window } = round.weighting {
        ages_into(ages, round.index, age_window, round.history, candidates);
    }
    let work = WorkRound::new(round.prev_hash, round.index);
    weights.clear();
    weights.extend(candidates.iter().enumerate().map(|(i, c)| {
        let nonce = nonces.get(i).copied().flatten();
        let age = ages.get(i).copied().unwrap_or(0);
        round
            .weighting
            .weigh(&work, (&c.address, c.stake, c.bpm), nonce, age)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address(Digest([n; 32]))
    }

    /// `record` replayed on `prev` after `change` (a tampered copy).
    fn replay_changed(
        record: &RoundRecord,
        prev: &Digest,
        change: &dyn Fn(&mut RoundRecord),
    ) -> Result<(), LotteryError> {
        let mut t = record.clone();
        change(&mut t);
        t.replay(prev, None)
    }

    fn cand(n: u8, stake: u64) -> Candidate {
        Candidate {
            address: addr(n),
            stake,
            bpm: n as u32,
        }
    }

    /// Vectors computed independently (Python hashlib) from the module docs.
    #[test]
    fn pinned_seed_and_stream() {
        let prev = Digest::of(b"posd");
        let s = seed_v1(&prev, 1);
        assert_eq!(
            s.to_hex(),
            "f2ff9aed4f9a9c4f9cd3d823b8d1f003e8a40f4d71d17f65e9b64f1812145b06"
        );
        let mut stream = ShaStream::new(s);
        assert_eq!(stream.next_u128(), 313646171652757120561899223855775487695);
        assert_eq!(stream.next_u128(), 132982633534158833796354515985872304340);
    }

    #[test]
    fn pinned_draws() {
        let prev = Digest::of(b"posd");
        let cands = vec![cand(3, 700), cand(1, 100), cand(2, 200)];
        // (block index, ticket, winner), one vector per winner.
        for (index, ticket, winner) in [(1, 695, 3), (3, 180, 2), (6, 48, 1)] {
            let r = draw(&prev, index, Rule::V1, cands.clone()).unwrap();
            assert_eq!((r.ticket, r.winner().address), (ticket, addr(winner)));
        }
    }

    /// v2 vectors, computed independently (Python hashlib) from the module
    /// docs and docs/LOTTERY.md: reveal = bytes 0..=31.
    #[test]
    fn pinned_v2_commitment_seed_and_stream() {
        let prev = Digest::of(b"posd");
        let reveal = Secret(std::array::from_fn(|i| i as u8));
        assert_eq!(
            reveal.commitment().to_hex(),
            "b1fc3b6e70bc70268665590033255ec7ddde7ea975d2e19ec824bd243b1809ad"
        );
        let s = seed_v2(&prev, 1, &reveal);
        assert_eq!(
            s.to_hex(),
            "bd8404bbace9e9a64667f19119f89463fbd78b785ba69328fb7013655b68e1d4"
        );
        let mut stream = ShaStream::new(s);
        assert_eq!(stream.next_u128(), 135931153262818125333503657030415900096);
        assert_eq!(stream.next_u128(), 241327533904403369296448399365219048446);
    }

    /// v2 draws with reveal = SHA-256("r" || index as one byte).
    #[test]
    fn pinned_v2_draws() {
        let prev = Digest::of(b"posd");
        let cands = vec![cand(3, 700), cand(1, 100), cand(2, 200)];
        for (index, ticket, winner) in [(1u8, 658, 3), (4, 191, 2), (11, 90, 1)] {
            let reveal = Secret(Digest::of(&[b'r', index]).0);
            let rule = Rule::V2 {
                reveal,
                next_commitment: Digest::default(),
            };
            let r = draw(&prev, index as u64, rule, cands.clone()).unwrap();
            assert_eq!((r.ticket, r.winner().address), (ticket, addr(winner)));
            r.replay(&prev, Some(&reveal.commitment())).unwrap();
        }
    }

    /// A v2 round replays only against the commitment its reveal answers,
    /// and a round replays only under the rule its height uses.
    #[test]
    fn reveals_must_match_their_commitment() {
        let prev = Digest::of(b"x");
        let reveal = Secret([7; 32]);
        let rule = Rule::V2 {
            reveal,
            next_commitment: Secret([8; 32]).commitment(),
        };
        let r = draw(&prev, 4, rule, vec![cand(1, 5), cand(2, 6)]).unwrap();
        r.replay(&prev, Some(&reveal.commitment())).unwrap();
        assert_eq!(
            r.replay(&prev, Some(&Secret([9; 32]).commitment())),
            Err(LotteryError::RevealMismatch)
        );
        assert_eq!(
            r.replay(&prev, None),
            Err(LotteryError::WrongRule {
                expected: 1,
                found: 2
            })
        );
        let v1 = draw(&prev, 4, Rule::V1, vec![cand(1, 5), cand(2, 6)]).unwrap();
        assert_eq!(
            v1.replay(&prev, Some(&reveal.commitment())),
            Err(LotteryError::WrongRule {
                expected: 2,
                found: 1
            })
        );
        // Another reveal with the same commitment is impossible; another
        // seed under the same reveal is caught as a seed mismatch.
        let mut forged = r.clone();
        forged.seed = Digest::default();
        assert_eq!(
            forged.replay(&prev, Some(&reveal.commitment())),
            Err(LotteryError::Mismatch("seed"))
        );
    }

    #[test]
    fn commitments_follow_the_anchor_then_the_chain() {
        let anchor = Anchor {
            from: 5,
            commitment: Digest([1; 32]),
        };
        let prev = Some(Digest([2; 32]));
        assert_eq!(expected_commitment(None, 9, prev), Ok(None));
        assert_eq!(expected_commitment(Some(&anchor), 4, prev), Ok(None));
        assert_eq!(
            expected_commitment(Some(&anchor), 5, prev),
            Ok(Some(anchor.commitment))
        );
        assert_eq!(expected_commitment(Some(&anchor), 6, prev), Ok(prev));
        assert_eq!(
            expected_commitment(Some(&anchor), 6, None),
            Err(LotteryError::NoCommitment)
        );
        assert_eq!(format!("{:?}", Secret([3; 32])), "Secret(..)");
    }

    fn v2(k: u8) -> Rule {
        Rule::V2 {
            reveal: Secret(Digest::of(&[b'r', k]).0),
            next_commitment: Digest::default(),
        }
    }

    /// A record of block `index`'s round for the age vectors: only its
    /// candidates and winner matter.
    fn past(index: u64, members: &[u8], winner: u8) -> RoundRecord {
        RoundRecord {
            index,
            seed: Digest::default(),
            candidates: members.iter().map(|&n| cand(n, 1)).collect(),
            ticket: 0,
            winner: members.iter().position(|&n| n == winner).unwrap(),
            rule: Rule::V1,
            weighting: Weighting::Stake,
            weights: Vec::new(),
        }
    }

    /// stake_age and stake_work vectors, computed independently (Python
    /// hashlib, docs/LOTTERY.md) with reveal = SHA-256("r" || k as one byte).
    #[test]
    fn pinned_weighted_draws() {
        use crate::weighting::{Weighed, Why};
        let prev = Digest::of(b"posd");
        let cands = vec![cand(3, 700), cand(1, 100), cand(2, 200)];
        assert_eq!(
            v2(1)
                .seed(&Weighting::StakeAge { age_window: 10 }, &prev, 4)
                .to_hex(),
            "ccc56af62041b9ba6a5b2882ff1e64e68a3057eee225f7415254c550c69026ac"
        );
        // Ages 3, 1, 0: weights 400, 400, 700.
        let history = [
            past(1, &[1, 2, 3], 3),
            past(2, &[1, 2], 2),
            past(3, &[1, 2, 3], 3),
        ];
        let age = Weighting::StakeAge { age_window: 10 };
        for (k, ticket, winner) in [(1u8, 151, 1), (6, 490, 2), (2, 1440, 3)] {
            let ballot = Ballot {
                weighting: age,
                candidates: cands.clone(),
                nonces: Vec::new(),
                history: &history,
            };
            let r = draw_weighted(&prev, 4, v2(k), ballot).unwrap();
            assert_eq!((r.ticket, r.winner().address), (ticket, addr(winner)));
            let weights: Vec<_> = r.weights.iter().map(|w| (w.weight, w.why)).collect();
            assert_eq!(
                weights,
                [(400, Why::Age(3)), (400, Why::Age(1)), (700, Why::Age(0))]
            );
            assert_eq!(r.total_weight(), 1500);
            r.replay_after(&prev, None, &history).unwrap_err();
            let commitment = r.rule.reveal().unwrap().commitment();
            r.replay_after(&prev, Some(&commitment), &history).unwrap();
            // Without the previous rounds every age is 0: the weights differ.
            assert_eq!(
                r.replay_after(&prev, Some(&commitment), &[]),
                Err(LotteryError::Mismatch("weights"))
            );
        }
        // Nonces 160 (z = 6: 100 × 2^4), 1 (z = 2: 200 × 2), 0 (z = 0 < work_bits: 700).
        let work = Weighting::StakeWork {
            work_bits: 1,
            work_bonus_max: 4,
        };
        for (k, ticket, winner) in [(1u8, 157, 1), (8, 1855, 2), (2, 2310, 3)] {
            let ballot = Ballot {
                weighting: work,
                candidates: cands.clone(),
                nonces: vec![Some(0), Some(160), Some(1)],
                history: &[],
            };
            let r = draw_weighted(&prev, 4, v2(k), ballot).unwrap();
            assert_eq!((r.ticket, r.winner().address), (ticket, addr(winner)));
            let work = |weight, nonce, zeros| Weighed {
                weight,
                why: Why::Work {
                    nonce: Some(nonce),
                    zeros,
                },
            };
            assert_eq!(
                r.weights,
                [work(1600, 160, 6), work(400, 1, 2), work(700, 0, 0)]
            );
            let commitment = r.rule.reveal().unwrap().commitment();
            r.replay(&prev, Some(&commitment)).unwrap();
        }
    }

    /// A weighted record replays only with the weights its inputs give.
    #[test]
    fn a_weighted_replay_catches_tampered_weights() {
        use crate::weighting::Why;
        let prev = Digest::of(b"t");
        let ballot = Ballot {
            weighting: Weighting::StakeWork {
                work_bits: 1,
                work_bonus_max: 4,
            },
            candidates: (1..=5).map(|n| cand(n, n as u64)).collect(),
            nonces: (1..=5).map(Some).collect(),
            history: &[],
        };
        let r = draw_weighted(&prev, 3, Rule::V1, ballot).unwrap();
        r.replay(&prev, None).unwrap();
        let tampered = |f: &dyn Fn(&mut RoundRecord)| replay_changed(&r, &prev, f);
        let mismatch = |what| Err(LotteryError::Mismatch(what));
        assert_eq!(tampered(&|t| t.weights[0].weight += 1), mismatch("weights"));
        assert_eq!(
            tampered(&|t| t.weights[1].why = Why::Work {
                nonce: Some(99),
                zeros: 9
            }),
            mismatch("weights")
        );
        assert_eq!(
            tampered(&|t| {
                t.weights.pop();
            }),
            mismatch("weights")
        );
        assert_eq!(tampered(&|t| t.ticket += 1), mismatch("ticket"));
        // The seed names the rule: the same draw claimed as another rule fails.
        assert_eq!(
            tampered(&|t| t.weighting = Weighting::StakeAge { age_window: 3 }),
            mismatch("seed")
        );
        // A stake record carries no weights.
        let s = draw(&prev, 3, Rule::V1, vec![cand(1, 5)]).unwrap();
        let mut t = s.clone();
        t.weights = r.weights[..1].to_vec();
        assert_eq!(t.replay(&prev, None), mismatch("weights"));
    }

    #[test]
    fn rejection_skips_the_biased_top() {
        // n = 2^127 + 1 rejects about half of all words; the results must still be < n.
        let n = (1u128 << 127) + 1;
        let mut s = ShaStream::new(Digest::of(b"bias"));
        for _ in 0..64 {
            assert!(s.below(n) < n);
        }
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let prev = Digest::of(b"x");
        let a = draw(&prev, 9, Rule::V1, vec![cand(1, 5), cand(2, 6), cand(3, 7)]).unwrap();
        let b = draw(&prev, 9, Rule::V1, vec![cand(3, 7), cand(1, 5), cand(2, 6)]).unwrap();
        assert_eq!(a, b);
        a.replay(&prev, None).unwrap();
        assert!(a.replay(&Digest::of(b"y"), None).is_err());
    }

    #[test]
    fn bad_candidate_sets() {
        let prev = Digest::default();
        let d = |cands| draw(&prev, 1, Rule::V1, cands);
        assert_eq!(d(vec![]), Err(LotteryError::NoCandidates));
        assert_eq!(d(vec![cand(1, 0)]), Err(LotteryError::ZeroStake(addr(1))));
        assert_eq!(
            d(vec![cand(1, 3), cand(1, 4)]),
            Err(LotteryError::Duplicate(addr(1)))
        );
    }

    /// Every stored field a replay checks, whether the candidates replay in
    /// place (strict order) or through a full draw (any other order).
    #[test]
    fn a_replay_catches_every_tampered_field() {
        let prev = Digest::of(b"t");
        let r = draw(
            &prev,
            3,
            Rule::V1,
            (1..=5).map(|n| cand(n, n as u64)).collect(),
        )
        .unwrap();
        r.replay(&prev, None).unwrap();
        let tampered = |f: &dyn Fn(&mut RoundRecord)| replay_changed(&r, &prev, f);
        let mismatch = |what| Err(LotteryError::Mismatch(what));
        assert_eq!(tampered(&|t| t.ticket += 1), mismatch("ticket"));
        assert_eq!(
            tampered(&|t| t.winner = (t.winner + 1) % 5),
            mismatch("winner")
        );
        assert_eq!(tampered(&|t| t.index += 1), mismatch("seed"));
        assert_eq!(
            tampered(&|t| t.candidates.swap(0, 4)),
            mismatch("candidate order")
        );
        // A changed stake moves the winner or leaves the ticket out of range.
        assert!(tampered(&|t| t.candidates[r.winner].stake += 1_000).is_err());
        assert_eq!(
            tampered(&|t| t.candidates[1] = t.candidates[0].clone()),
            Err(LotteryError::Duplicate(addr(1)))
        );
        assert_eq!(
            tampered(&|t| t.candidates[2].stake = 0),
            Err(LotteryError::ZeroStake(addr(3)))
        );
        assert_eq!(
            tampered(&|t| t.candidates.clear()),
            Err(LotteryError::NoCandidates)
        );
    }

    #[test]
    fn huge_stakes_cost_nothing_extra() {
        let prev = Digest::default();
        let cands: Vec<_> = (0..200u8).map(|n| cand(n, u64::MAX)).collect();
        let r = draw(&prev, 1, Rule::V1, cands).unwrap();
        assert_eq!(r.total_stake(), 200 * u64::MAX as u128);
        assert!(r.ticket < r.total_stake());
    }

    /// Win shares follow stakes under both rules: chi-square over 20,000
    /// replayable rounds each (v2 reveals: SHA-256 of the index, a stand-in
    /// for the OS RNG).
    #[test]
    fn win_shares_follow_stakes() {
        let v2 = |index: u64| Rule::V2 {
            reveal: Secret(Digest::of(&index.to_be_bytes()).0),
            next_commitment: Digest::default(),
        };
        for rule in [&(|_| Rule::V1) as &dyn Fn(u64) -> Rule, &v2] {
            let stakes = [1u64, 2, 3, 4, 10];
            let total: u64 = stakes.iter().sum();
            let cands: Vec<_> = stakes
                .iter()
                .enumerate()
                .map(|(i, &s)| cand(i as u8 + 1, s))
                .collect();
            let rounds = 20_000u64;
            let mut wins = [0u64; 5];
            let prev = Digest::of(b"stats");
            for index in 1..=rounds {
                let r = draw(&prev, index, rule(index), cands.clone()).unwrap();
                wins[r.winner] += 1;
            }
            let chi2: f64 = stakes
                .iter()
                .zip(wins)
                .map(|(&s, w)| {
                    let expected = rounds as f64 * s as f64 / total as f64;
                    (w as f64 - expected).powi(2) / expected
                })
                .sum();
            // 4 degrees of freedom: p = 0.001 at 18.47.
            assert!(chi2 < 18.47, "chi2 {chi2}, wins {wins:?}");
            // A one-sided bias (e.g. always the first candidate) would blow this up.
            assert!(wins.iter().all(|&w| w > 0));
        }
    }

    use crate::weighting::{work_weight, work_zeros, Why};

    fn record(index: u64, members: &[u8], winner: u8) -> RoundRecord {
        let candidates: Vec<_> = members.iter().map(|&n| cand(n, 1)).collect();
        let winner = members.iter().position(|&n| n == winner).unwrap();
        RoundRecord {
            index,
            seed: Digest::default(),
            candidates,
            ticket: 0,
            winner,
            rule: Rule::V1,
            weighting: Weighting::Stake,
            weights: Vec::new(),
        }
    }

    #[test]
    fn age_counts_rounds_proposed_since_the_last_win_in_the_window() {
        // Rounds 1..=6: 1 wins round 2; 2 is in every round, wins none; 3 only in round 6.
        let history = [
            record(1, &[1, 2], 2),
            record(2, &[1, 2], 1),
            record(3, &[1, 2], 2),
            record(4, &[1, 2], 2),
            record(5, &[2], 2),
            record(6, &[2, 3], 2),
        ];
        // 2 won rounds 1, 3, 4, 5 and 6: age 0; 1 counts 3 and 4; 3 counts 6; 4 is new.
        let cands = [cand(1, 5), cand(2, 5), cand(3, 5), cand(4, 5)];
        assert_eq!(ages(7, 10, &history, &cands), vec![2, 0, 1, 0]);
        // A window of 3 sees rounds 4..=6 only.
        assert_eq!(ages(7, 3, &history, &cands), vec![1, 0, 1, 0]);
        // Block 3 with a window of 1 sees round 2 alone (1 won it); later records are ignored.
        assert_eq!(ages(3, 1, &history, &cands), vec![0, 1, 0, 0]);
    }

    #[test]
    fn weights_follow_the_rule() {
        let prev = Digest::of(b"w");
        let cands = [cand(1, 10), cand(2, 20)];
        let history = [record(1, &[1, 2], 2), record(2, &[1, 2], 2)];
        let w = weigh(
            &Weighting::StakeAge { age_window: 10 },
            &prev,
            3,
            &cands,
            &[],
            &history,
        );
        assert_eq!(
            w,
            vec![
                Weighed {
                    weight: 30,
                    why: Why::Age(2)
                },
                Weighed {
                    weight: 20,
                    why: Why::Age(0)
                }
            ]
        );
        let w = weigh(&Weighting::Stake, &prev, 3, &cands, &[], &[]);
        assert_eq!(w[1].weight, 20);
        let work = Weighting::StakeWork {
            work_bits: 1,
            work_bonus_max: 4,
        };
        let w = weigh(&work, &prev, 3, &cands, &[None, Some(7)], &[]);
        assert_eq!(
            w[0],
            Weighed {
                weight: 10,
                why: Why::Work {
                    nonce: None,
                    zeros: 0
                }
            }
        );
        let z = work_zeros(&prev, 3, &addr(2), 2, 7);
        assert_eq!(w[1].weight, work_weight(20, z, 1, 4));
    }
}
