//! The closed set of durable state changes.
//!
//! Every change of stored state is one of these, applied in order by a single
//! writer. Each carries every input it needs (times included), so applying it
//! is deterministic given the store: the same list could later be a replicated log.

use crate::block::Block;
use crate::digest::Address;
use crate::lottery::RoundRecord;
use serde::{Deserialize, Serialize};

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
    /// Append the round's block, store its draw, reward the winner.
    CommitRound {
        block: Block,
        round: RoundRecord,
        reward: u64,
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
