//! The closed set of durable state changes.
//!
//! Every change of stored state is one of these, applied in order by a single
//! writer. Each carries every input it needs (times included), so applying it
//! is deterministic given the store: the same list could later be a replicated log.

use crate::block::{next_timestamp, Block};
use crate::digest::Address;
use crate::lottery::{draw_weighted, Ballot, Candidate, LotteryError, RoundRecord, Rule, Secret};
use serde::{Deserialize, Serialize};

// Commands are made one at a time and applied at once: boxing the round
// would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A new validator staking `stake` tokens, while fewer than
    /// `max_validators` records exist.
    Register {
        address: Address,
        stake: u64,
        max_stake: u64,
        max_validators: u64,
        at_ms: u64,
    },
    /// Forfeit a validator's stake for a malformed proposal.
    Slash {
        address: Address,
        reason: String,
        at_ms: u64,
    },
    /// Append the round's block, store its draw, reward the winner, and keep
    /// `next_secret` as the secret the next round reveals. The proposer drew
    /// it; carrying it here makes it state every node applying the command
    /// holds, so whichever node closes the next round can reveal it. Its
    /// commitment is in `round` (lottery v2).
    CommitRound {
        block: Block,
        round: RoundRecord,
        reward: u64,
        next_secret: Secret,
    },
    /// The validator made its first proposal: it is never forgotten.
    Proposed { address: Address, at_ms: u64 },
    /// Remove these validators if they still qualify for forgetting: active,
    /// never proposed, never won, registered at or before `registered_by_ms`
    /// (and after proposals began to be recorded). Whether each was
    /// disconnected long enough is the proposer's knowledge, not the store's.
    Forget {
        addresses: Vec<Address>,
        registered_by_ms: u64,
    },
}

impl Command {
    /// The `CommitRound` that appends the draw's winner on `tip`: a v2 draw
    /// revealing `reveal` (the store's pending secret) and committing to
    /// `next_secret`. The block is stamped `clock_ms`, or just after the tip
    /// when the clock is behind it.
    pub fn commit_round(
        tip: &Block,
        candidates: Vec<Candidate>,
        reveal: Secret,
        next_secret: Secret,
        clock_ms: u64,
        reward: u64,
    ) -> Result<Command, LotteryError> {
        let ballot = Ballot::stake(candidates);
        Self::commit_weighted(tip, ballot, reveal, next_secret, clock_ms, reward)
    }

    /// [`Command::commit_round`] drawn over the weights `ballot` gives
    /// (the chain's weighting, the proposals' nonces, the previous rounds).
    pub fn commit_weighted(
        tip: &Block,
        ballot: Ballot<'_>,
        reveal: Secret,
        next_secret: Secret,
        clock_ms: u64,
        reward: u64,
    ) -> Result<Command, LotteryError> {
        let rule = Rule::V2 {
            reveal,
            next_commitment: next_secret.commitment(),
        };
        let round = draw_weighted(&tip.hash, tip.index + 1, rule, ballot)?;
        let winner = round.winner();
        let at_ms = next_timestamp(tip.timestamp_ms, clock_ms);
        let block = Block::next(tip, at_ms, winner.bpm, winner.address);
        Ok(Command::CommitRound {
            block,
            round,
            reward,
            next_secret,
        })
    }
}
