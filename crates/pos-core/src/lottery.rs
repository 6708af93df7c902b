//! The stake-weighted lottery: who proposes the next block.
//!
//! Randomness is a deterministic stream derived from the chain, so anyone
//! holding a block's [`RoundRecord`] can replay its draw:
//!
//! 1. `seed = SHA-256("posd-lottery-v1" || prev_hash (32 raw bytes) || index (u64 BE))`
//! 2. word `i` of the stream = the first 16 bytes, big-endian, of
//!    `SHA-256(seed || i (u64 BE))`, for i = 0, 1, 2, ...
//! 3. candidates are sorted by address; `total` = the sum of their stakes;
//!    a ticket uniform in `[0, total)` is drawn by rejection (words at or
//!    above the largest multiple of `total` are skipped, never reduced modulo);
//! 4. the winner is the first candidate whose running stake sum exceeds the ticket.
//!
//! Cost: the candidates themselves plus O(1), one sort (skipped when they come
//! sorted) and one scan, whatever the stake sizes (u128 sums cannot overflow for u64 stakes and < 2^64 candidates).

use crate::digest::{Address, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Domain tag of the seed, so no other SHA-256 use in posd can collide with it.
pub const SEED_DOMAIN: &[u8] = b"posd-lottery-v1";

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
}

/// The seed of the round that produces block `index` on top of `prev_hash`.
pub fn seed(prev_hash: &Digest, index: u64) -> Digest {
    let mut h = Sha256::new();
    h.update(SEED_DOMAIN);
    h.update(prev_hash.0);
    h.update(index.to_be_bytes());
    Digest(h.finalize().into())
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
}

impl RoundRecord {
    pub fn winner(&self) -> &Candidate {
        &self.candidates[self.winner]
    }

    pub fn total_stake(&self) -> u128 {
        self.candidates.iter().map(|c| c.stake as u128).sum()
    }

    /// Re-runs the draw from `prev_hash` and checks every stored field.
    pub fn replay(&self, prev_hash: &Digest) -> Result<(), LotteryError> {
        let again = draw(prev_hash, self.index, self.candidates.clone())?;
        if again.seed != self.seed {
            return Err(LotteryError::Mismatch("seed"));
        }
        if again.candidates != self.candidates {
            return Err(LotteryError::Mismatch("candidate order"));
        }
        if again.ticket != self.ticket {
            return Err(LotteryError::Mismatch("ticket"));
        }
        if again.winner != self.winner {
            return Err(LotteryError::Mismatch("winner"));
        }
        Ok(())
    }
}

/// Draws the proposer of block `index` on top of `prev_hash`.
pub fn draw(
    prev_hash: &Digest,
    index: u64,
    mut candidates: Vec<Candidate>,
) -> Result<RoundRecord, LotteryError> {
    if candidates.is_empty() {
        return Err(LotteryError::NoCandidates);
    }
    // posd hands candidates over in strict address order (which also rules
    // out duplicates): then this check is the only pass before the draw.
    let strictly_sorted = candidates.windows(2).all(|w| w[0].address < w[1].address);
    if !strictly_sorted {
        candidates.sort_unstable_by_key(|c| c.address);
        if let Some(w) = candidates.windows(2).find(|w| w[0].address == w[1].address) {
            return Err(LotteryError::Duplicate(w[0].address));
        }
    }
    let mut total: u128 = 0;
    for c in &candidates {
        if c.stake == 0 {
            return Err(LotteryError::ZeroStake(c.address));
        }
        total += c.stake as u128;
    }
    let seed = seed(prev_hash, index);
    let ticket = ShaStream::new(seed).below(total);
    let mut running: u128 = 0;
    let winner = candidates
        .iter()
        .position(|c| {
            running += c.stake as u128;
            running > ticket
        })
        .expect("ticket < total, so some running sum exceeds it");
    Ok(RoundRecord {
        index,
        seed,
        candidates,
        ticket,
        winner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address(Digest([n; 32]))
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
        let s = seed(&prev, 1);
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
            let r = draw(&prev, index, cands.clone()).unwrap();
            assert_eq!((r.ticket, r.winner().address), (ticket, addr(winner)));
        }
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
        let a = draw(&prev, 9, vec![cand(1, 5), cand(2, 6), cand(3, 7)]).unwrap();
        let b = draw(&prev, 9, vec![cand(3, 7), cand(1, 5), cand(2, 6)]).unwrap();
        assert_eq!(a, b);
        a.replay(&prev).unwrap();
        assert!(a.replay(&Digest::of(b"y")).is_err());
    }

    #[test]
    fn bad_candidate_sets() {
        let prev = Digest::default();
        assert_eq!(draw(&prev, 1, vec![]), Err(LotteryError::NoCandidates));
        assert_eq!(
            draw(&prev, 1, vec![cand(1, 0)]),
            Err(LotteryError::ZeroStake(addr(1)))
        );
        assert_eq!(
            draw(&prev, 1, vec![cand(1, 3), cand(1, 4)]),
            Err(LotteryError::Duplicate(addr(1)))
        );
    }

    #[test]
    fn huge_stakes_cost_nothing_extra() {
        let prev = Digest::default();
        let cands: Vec<_> = (0..200u8).map(|n| cand(n, u64::MAX)).collect();
        let r = draw(&prev, 1, cands).unwrap();
        assert_eq!(r.total_stake(), 200 * u64::MAX as u128);
        assert!(r.ticket < r.total_stake());
    }

    /// Win shares follow stakes: chi-square over 20,000 replayable rounds.
    #[test]
    fn win_shares_follow_stakes() {
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
            let r = draw(&prev, index, cands.clone()).unwrap();
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
