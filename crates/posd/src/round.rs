//! Closing a round: from pending proposals to the command that commits a block.

use pos_core::block::next_timestamp;
use pos_core::lottery::{draw, Candidate};
use pos_core::{Address, Block, Command, Status};
use pos_store::{Store, StoreError};
use std::collections::BTreeMap;

/// Builds the `CommitRound` for these proposals on top of the current tip,
/// or `None` when no active validator proposed. The block is stamped with
/// `clock_ms`, or just after the tip if the clock is behind it.
pub fn prepare(
    store: &Store,
    proposals: BTreeMap<Address, u32>,
    clock_ms: u64,
    reward: u64,
) -> Result<Option<Command>, StoreError> {
    let mut candidates = Vec::with_capacity(proposals.len());
    for (address, bpm) in proposals {
        // Slashed (or vanished) validators' proposals are dropped here.
        if let Some(v) = store.validator(&address)? {
            if v.status() == Status::Active && v.balance > 0 {
                candidates.push(Candidate {
                    address,
                    stake: v.balance,
                    bpm,
                });
            }
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let tip = store.tip()?;
    let round = draw(&tip.hash, tip.index + 1, candidates)
        .expect("candidates are non-empty, unique, staked");
    let winner = round.winner();
    let at_ms = next_timestamp(tip.timestamp_ms, clock_ms);
    let block = Block::next(&tip, at_ms, winner.bpm, winner.address);
    Ok(Some(Command::CommitRound {
        block,
        round,
        reward,
    }))
}
