//! Checking a chain block by block in constant memory: hashes, links and draws.

use crate::block::{Block, MAX_TIMESTAMP_MS};
use crate::lottery::{LotteryError, RoundRecord};

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

/// Checks that `block` follows `parent` and that `round` is its draw: the
/// draw replays from the parent and its winner proposed the block. The
/// store applies a round only if this holds, and verification re-checks it.
pub fn check_round(parent: &Block, block: &Block, round: &RoundRecord) -> Result<(), VerifyError> {
    let index = block.index;
    check_link(parent, block)?;
    if round.index != index {
        return Err(VerifyError::MissingRound { index });
    }
    round
        .replay(&parent.hash)
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

/// Feeds on blocks in index order, holding only the previous one.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    parent: Option<Block>,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
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
                check_round(parent, &block, round)?;
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
    use crate::lottery::{draw, Candidate};

    fn chain(n: u64) -> Vec<(Block, Option<RoundRecord>)> {
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
            let round = draw(&parent.hash, i, cands).unwrap();
            let w = round.winner().clone();
            let block = Block::next(parent, 1_000 + i, w.bpm, w.address);
            out.push((block, Some(round)));
        }
        out
    }

    fn verify(blocks: Vec<(Block, Option<RoundRecord>)>) -> Result<(), VerifyError> {
        let mut v = ChainVerifier::new();
        for (b, r) in blocks {
            v.push(b, r.as_ref())?;
        }
        Ok(())
    }

    #[test]
    fn good_chain_passes() {
        verify(chain(20)).unwrap();
    }

    #[test]
    fn each_fault_is_named_at_its_block() {
        let mut c = chain(5);
        c[3].0.bpm += 1;
        assert_eq!(verify(c), Err(VerifyError::BadHash { index: 3 }));

        let mut c = chain(5);
        c[2].0.prev_hash = Some(Digest::default());
        c[2].0.hash = c[2].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::BadLink { index: 2 }));

        let mut c = chain(5);
        c[4].1.as_mut().unwrap().ticket += 1;
        assert!(matches!(verify(c), Err(VerifyError::Draw { index: 4, .. })));

        let mut c = chain(5);
        c[1].1 = None;
        assert_eq!(verify(c), Err(VerifyError::MissingRound { index: 1 }));

        let mut c = chain(5);
        c[3].0.timestamp_ms = c[2].0.timestamp_ms - 1;
        c[3].0.hash = c[3].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::TimeBackwards { index: 3 }));

        let mut c = chain(5);
        c[5].0.timestamp_ms = crate::block::MAX_TIMESTAMP_MS + 1;
        c[5].0.hash = c[5].0.compute_hash();
        assert_eq!(verify(c), Err(VerifyError::TimeOutOfRange { index: 5 }));

        let mut c = chain(5);
        c.remove(2);
        assert!(matches!(
            verify(c),
            Err(VerifyError::BadIndex { index: 3, .. })
        ));
    }
}
