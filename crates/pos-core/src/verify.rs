//! Checking a chain block by block in constant memory: hashes, links and draws.

use crate::block::{Block, MAX_TIMESTAMP_MS};
use crate::digest::Digest;
use crate::lottery::{expected_commitment, Anchor, LotteryError, RoundRecord};
use crate::weighting::Weighting;
use std::collections::VecDeque;

/// What is wrong at one block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("block {index}: stored hash does not match its contents")]
    BadHash { index: u64 },
    #[error("block {index}: expected index {expected}")]
    BadIndex { index: u64, expected: u64 },
    #[error("block {index}: PrevHash does not match the previous block's hash")]
    BadLink { index: u64 },
    #[error("block {index}: genesis must have no PrevHash, Validator or BPM")]
    BadGenesis { index: u64 },
    #[error("block {index}: no validator")]
    NoValidator { index: u64 },
    #[error("block {index}: no stored lottery round")]
    MissingRound { index: u64 },
    #[error("block {index}: lottery: {source}")]
    Draw { index: u64, source: LotteryError },
    #[error("block {index}: lottery winner or BPM differs from the block")]
    WrongWinner { index: u64 },
    #[error("block {index}: Timestamp is before the previous block's")]
    TimeBackwards { index: u64 },
    #[error("block {index}: Timestamp is past the year 9999")]
    TimeOutOfRange { index: u64 },
}

/// Checks that `block` may follow `parent`: index, link and hash.
pub fn check_link(parent: &Block, block: &Block) -> Result<(), VerifyError> {
    let index = block.index;
    if index != parent.index + 1 {
        return Err(VerifyError::BadIndex {
            index,
            expected: parent.index + 1,
        });
    }
    if block.prev_hash != Some(parent.hash) {
        return Err(VerifyError::BadLink { index });
    }
    if block.validator.is_none() {
        return Err(VerifyError::NoValidator { index });
    }
    // Equal times pass: blocks made before timestamps were forced to grow may share one.
    if block.timestamp_ms < parent.timestamp_ms {
        return Err(VerifyError::TimeBackwards { index });
    }
    check_hash(block)
}

/// What a round is checked against besides its block: the commitment its
/// reveal must answer (see [`expected_commitment`]), the chain's weighting
/// and the previous rounds' records in ascending order (the last
/// `age_window` under `stake_age`; otherwise none are needed).
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub commitment: Option<&'a Digest>,
    pub weighting: &'a Weighting,
    pub history: &'a [RoundRecord],
}

/// Checks that `block` follows `parent` and that `round` is its draw: the
/// draw was made under the chain's weighting, replays from the parent
/// (revealing the preimage of the expected commitment under v2, see
/// [`RoundRecord::replay_after`], every weight recomputed) and its winner
/// proposed the block. The store applies a round only if this holds, and
/// verification re-checks it.
pub fn check_round(
    parent: &Block,
    block: &Block,
    round: &RoundRecord,
    expect: Expect<'_>,
) -> Result<(), VerifyError> {
    let index = block.index;
    check_link(parent, block)?;
    if round.index != index {
        return Err(VerifyError::MissingRound { index });
    }
    if round.weighting != *expect.weighting {
        let source = LotteryError::WrongWeighting {
            expected: expect.weighting.name(),
            found: round.weighting.name(),
        };
        return Err(VerifyError::Draw { index, source });
    }
    round
        .replay_after(&parent.hash, expect.commitment, expect.history)
        .map_err(|source| VerifyError::Draw { index, source })?;
    let winner = round.winner();
    if Some(winner.address) != block.validator || winner.bpm != block.bpm {
        return Err(VerifyError::WrongWinner { index });
    }
    Ok(())
}

fn check_hash(block: &Block) -> Result<(), VerifyError> {
    if block.timestamp_ms > MAX_TIMESTAMP_MS {
        return Err(VerifyError::TimeOutOfRange { index: block.index });
    }
    if block.compute_hash() != block.hash {
        return Err(VerifyError::BadHash { index: block.index });
    }
    Ok(())
}

/// Feeds on blocks in index order, holding only the previous one, what
/// its round committed the next one to and, under `stake_age`, the last
/// `age_window` rounds' records.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    parent: Option<Block>,
    /// Where v2 begins; `None`: a chain of v1 rounds only.
    anchor: Option<Anchor>,
    /// The previous round's next commitment (v2).
    committed: Option<Digest>,
    /// The chain's weighting rule.
    weighting: Weighting,
    /// The records a `stake_age` draw reads, oldest first.
    history: VecDeque<RoundRecord>,
}

impl ChainVerifier {
    /// A verifier for a chain whose v2 lottery starts at `anchor`: blocks
    /// before it replay by v1, from it by v2, each reveal checked against
    /// the commitment made before its round opened.
    pub fn new(anchor: Option<Anchor>) -> Self {
        ChainVerifier {
            anchor,
            ..Self::default()
        }
    }

    /// The verifier for a chain weighted by `weighting` (default: stake).
    pub fn weighted(self, weighting: Weighting) -> Self {
        ChainVerifier { weighting, ..self }
    }

    /// How many blocks passed so far.
    pub fn height(&self) -> Option<u64> {
        self.parent.as_ref().map(|b| b.index)
    }

    /// Checks the next block and, past genesis, the round that produced it.
    pub fn push(&mut self, block: Block, round: Option<&RoundRecord>) -> Result<(), VerifyError> {
        let index = block.index;
        match &self.parent {
            None => {
                if index != 0 {
                    return Err(VerifyError::BadIndex { index, expected: 0 });
                }
                if block.prev_hash.is_some() || block.validator.is_some() || block.bpm != 0 {
                    return Err(VerifyError::BadGenesis { index });
                }
                check_hash(&block)?;
            }
            Some(parent) => {
                let round = round.ok_or(VerifyError::MissingRound { index })?;
                let commitment = expected_commitment(self.anchor.as_ref(), index, self.committed)
                    .map_err(|source| VerifyError::Draw { index, source })?;
                let expect = Expect {
                    commitment: commitment.as_ref(),
                    weighting: &self.weighting,
                    history: self.history.make_contiguous(),
                };
                check_round(parent, &block, round, expect)?;
                self.committed = round.rule.next_commitment();
                let keep = self.weighting.history() as usize;
                if keep > 0 {
                    if self.history.len() == keep {
                        self.history.pop_front();
                    }
                    self.history.push_back(round.clone());
                }
            }
        }
        self.parent = Some(block);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Address, Digest};
    use crate::lottery::{draw, Candidate, Rule, Secret};

    /// The secret of block `i`'s round in these tests.
    fn secret(i: u64) -> Secret {
        Secret(Digest::of(&i.to_be_bytes()).0)
    }

    /// `n` blocks, drawn by v1 below `from` and by v2 from it on; the anchor.
    fn chain(n: u64, from: u64) -> (Vec<(Block, Option<RoundRecord>)>, Anchor) {
        let mut out = vec![(Block::genesis(1_000), None)];
        for i in 1..=n {
            let parent = &out.last().unwrap().0;
            let cands = (1..=3u8)
                .map(|k| Candidate {
                    address: Address(Digest([k; 32])),
                    stake: k as u64 * 10,
                    bpm: 60 + k as u32,
                })
                .collect();
            let rule = if i < from {
                Rule::V1
            } else {
                Rule::V2 {
                    reveal: secret(i),
                    next_commitment: secret(i + 1).commitment(),
                }
            };
            let round = draw(&parent.hash, i, rule, cands).unwrap();
            let w = round.winner().clone();
            let block = Block::next(parent, 1_000 + i, w.bpm, w.address);
            out.push((block, Some(round)));
        }
        let anchor = Anchor {
            from,
            commitment: secret(from).commitment(),
        };
        (out, anchor)
    }

    fn verify(
        (blocks, anchor): (Vec<(Block, Option<RoundRecord>)>, Anchor),
    ) -> Result<(), VerifyError> {
        let mut v = ChainVerifier::new(Some(anchor));
        for (b, r) in blocks {
            v.push(b, r.as_ref())?;
        }
        Ok(())
    }

    #[test]
    fn good_chains_pass() {
        // All v1 (anchor past the tip), v1 then v2, all v2.
        for from in [21, 8, 1] {
            verify(chain(20, from)).unwrap();
        }
        let (blocks, _) = chain(5, 9);
        let mut v1_only = ChainVerifier::new(None);
        for (b, r) in blocks {
            v1_only.push(b, r.as_ref()).unwrap();
        }
    }

    #[test]
    fn each_fault_is_named_at_its_block() {
        let mut c = chain(5, 3);
        c.0[3].0.bpm += 1;
        assert_eq!(verify(c), Err(VerifyError::BadHash { index: 3 }));

        let mut c = chain(5, 3);
        c.0[2].0.prev_hash = Some(Digest::default());
        c.0[2].0.hash = c.0[2].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::BadLink { index: 2 }));

        let mut c = chain(5, 3);
        c.0[4].1.as_mut().unwrap().ticket += 1;
        assert!(matches!(verify(c), Err(VerifyError::Draw { index: 4, .. })));

        let mut c = chain(5, 3);
        c.0[1].1 = None;
        assert_eq!(verify(c), Err(VerifyError::MissingRound { index: 1 }));

        let mut c = chain(5, 3);
        c.0[3].0.timestamp_ms = c.0[2].0.timestamp_ms - 1;
        c.0[3].0.hash = c.0[3].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::TimeBackwards { index: 3 }));

        let mut c = chain(5, 3);
        c.0[5].0.timestamp_ms = crate::block::MAX_TIMESTAMP_MS + 1;
        c.0[5].0.hash = c.0[5].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::TimeOutOfRange { index: 5 }));

        let mut c = chain(5, 3);
        c.0.remove(2);
        assert!(matches!(
            verify(c),
            Err(VerifyError::BadIndex { index: 3, .. })
        ));
    }

    /// `n` v2 blocks under `stake_age` (window 3): candidates 1..=3 every
    /// round, 4 every other round.
    fn age_chain(n: u64) -> Vec<(Block, Option<RoundRecord>)> {
        use crate::lottery::{draw_weighted, Ballot};
        let weighting = Weighting::StakeAge { age_window: 3 };
        let mut out = vec![(Block::genesis(1_000), None)];
        let mut history: Vec<RoundRecord> = Vec::new();
        for i in 1..=n {
            let parent = &out.last().unwrap().0;
            let candidates = (1..=4u8)
                .filter(|&k| k < 4 || i % 2 == 0)
                .map(|k| Candidate {
                    address: Address(Digest([k; 32])),
                    stake: k as u64 * 10,
                    bpm: 60 + k as u32,
                })
                .collect();
            let rule = Rule::V2 {
                reveal: secret(i),
                next_commitment: secret(i + 1).commitment(),
            };
            let from = history.len().saturating_sub(3);
            let ballot = Ballot {
                weighting,
                candidates,
                nonces: Vec::new(),
                history: &history[from..],
            };
            let round = draw_weighted(&parent.hash, i, rule, ballot).unwrap();
            let w = round.winner().clone();
            let block = Block::next(parent, 1_000 + i, w.bpm, w.address);
            history.push(round.clone());
            out.push((block, Some(round)));
        }
        out
    }

    #[test]
    fn age_chains_are_checked_with_their_window() {
        let verify_as = |blocks: Vec<(Block, Option<RoundRecord>)>, weighting| {
            let anchor = Anchor {
                from: 1,
                commitment: secret(1).commitment(),
            };
            let mut v = ChainVerifier::new(Some(anchor)).weighted(weighting);
            for (b, r) in blocks {
                v.push(b, r.as_ref())?;
            }
            Ok::<_, VerifyError>(())
        };
        let age = Weighting::StakeAge { age_window: 3 };
        let chain = age_chain(12);
        assert!(chain.iter().filter_map(|(_, r)| r.as_ref()).any(|r| r
            .weights
            .iter()
            .any(|w| w.weight > r.candidates[0].stake as u128 * 2)));
        verify_as(chain.clone(), age).unwrap();
        // Another window, or another rule, does not verify.
        assert!(verify_as(chain.clone(), Weighting::StakeAge { age_window: 4 }).is_err());
        assert!(matches!(
            verify_as(chain.clone(), Weighting::Stake),
            Err(VerifyError::Draw {
                index: 1,
                source: LotteryError::WrongWeighting { .. }
            })
        ));
        // A stored weight raised by one is caught at its block.
        let mut c = chain;
        c[7].1.as_mut().unwrap().weights[0].weight += 1;
        assert_eq!(
            verify_as(c, age),
            Err(VerifyError::Draw {
                index: 7,
                source: LotteryError::Mismatch("weights")
            })
        );
    }

    #[test]
    fn every_reveal_is_checked_against_its_commitment() {
        let draw_fault = |c, index, source| {
            assert_eq!(verify(c), Err(VerifyError::Draw { index, source }));
        };
        // The anchor does not match the first v2 reveal.
        let mut c = chain(6, 3);
        c.1.commitment = Digest::default();
        draw_fault(c, 3, LotteryError::RevealMismatch);
        // A round's next commitment was altered: the next reveal fails.
        let mut c = chain(6, 3);
        if let Some(Rule::V2 {
            next_commitment, ..
        }) = c.0[4].1.as_mut().map(|r| &mut r.rule)
        {
            *next_commitment = Digest::default();
        }
        draw_fault(c, 5, LotteryError::RevealMismatch);
        // A v1 round where v2 is due, and a v2 round before the switch.
        let mut c = chain(6, 3);
        let parent = c.0[3].0.clone();
        let v1 = draw(
            &parent.hash,
            4,
            Rule::V1,
            c.0[4].1.clone().unwrap().candidates,
        )
        .unwrap();
        let w = v1.winner().clone();
        c.0[4] = (Block::next(&parent, 2_000, w.bpm, w.address), Some(v1));
        draw_fault(
            c,
            4,
            LotteryError::WrongRule {
                expected: 2,
                found: 1,
            },
        );
        let mut c = chain(6, 3);
        c.1.from = 4;
        draw_fault(
            c,
            3,
            LotteryError::WrongRule {
                expected: 1,
                found: 2,
            },
        );
    }
}
