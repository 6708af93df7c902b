//! The rules a chain is created with. They are chain data, not node settings:
//! stored with the genesis block, so every restart (and, later, every node of
//! a cluster) applies the same ones, whatever its config file says.

use crate::block::Block;
use crate::weighting::Weighting;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    /// The genesis block's timestamp: with the rest, it fixes block 0's hash.
    pub genesis_ms: u64,
    /// Tokens added to a round's winner.
    pub block_reward: u64,
    /// Largest stake a registration may lock.
    pub max_stake: u64,
    /// Largest BPM a proposal may carry.
    pub max_bpm: u32,
    /// Whether a malformed proposal forfeits the proposer's stake.
    pub slash_on_invalid_bpm: bool,
    /// What a candidate weighs in the draw (SPEC §12); chains made before
    /// the rule existed weigh by stake.
    #[serde(default)]
    pub weighting: Weighting,
}

impl ChainSpec {
    /// Block 0 of a chain made with this spec.
    pub fn genesis(&self) -> Block {
        Block::genesis(self.genesis_ms)
    }
}

/// posd's default rules, with a genesis at the epoch (tests and tools).
impl Default for ChainSpec {
    fn default() -> Self {
        ChainSpec {
            genesis_ms: 0,
            block_reward: 1,
            max_stake: 1_000_000_000_000,
            max_bpm: 1000,
            slash_on_invalid_bpm: true,
            weighting: Weighting::Stake,
        }
    }
}
