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
        let Some(v) = store.validator(&address)? else {
            continue;
        };
        if v.status() != Status::Active || v.balance == 0 {
            continue;
        }
        // Only a data directory from before max_stake was bounded can hold
        // such a balance; skipping it keeps the round for everyone else.
        if !v.can_take(reward) {
            tracing::warn!(%address, balance = v.balance, reward,
                "validator cannot take the block reward without overflow; not a candidate");
            continue;
        }
        candidates.push(Candidate {
            address,
            stake: v.balance,
            bpm,
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::transition::Change;
    use pos_core::Digest;

    fn register(store: &Store, seed: u8, stake: u64) -> Address {
        let address = Address(Digest([seed; 32]));
        store
            .apply(&Command::Register {
                address,
                stake,
                max_stake: u64::MAX,
                max_validators: u64::MAX,
                at_ms: 0,
            })
            .unwrap()
            .unwrap();
        address
    }

    #[test]
    fn a_balance_that_cannot_take_the_reward_is_no_candidate() {
        let store = Store::temporary(&pos_core::ChainSpec::default()).unwrap();
        let whale = register(&store, 1, u64::MAX - 1);
        let small = register(&store, 2, 1);
        let proposals = BTreeMap::from([(whale, 70), (small, 80)]);
        let cmd = prepare(&store, proposals.clone(), 1, 2).unwrap().unwrap();
        let Command::CommitRound { round, .. } = &cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(round.candidates.len(), 1);
        assert_eq!(round.winner().address, small);
        let Ok(Change::Validator(v)) = store.apply(&cmd).unwrap() else {
            panic!("round refused")
        };
        assert_eq!(v.balance, 3);
        // A reward that fits keeps the whale in the draw (and it wins).
        let cmd = prepare(&store, proposals, 2, 1).unwrap().unwrap();
        let Ok(Change::Validator(v)) = store.apply(&cmd).unwrap() else {
            panic!("round refused")
        };
        assert_eq!(v.address, whale);
    }
}
