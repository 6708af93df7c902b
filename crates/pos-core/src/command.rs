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
    /// A new validator staking `stake` tokens.
    Register {
        address: Address,
        stake: u64,
        max_stake: u64,
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
}
