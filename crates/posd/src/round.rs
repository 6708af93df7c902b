//! Closing a round: from pending proposals to the command that commits a block.

use crate::validators::pending::Proposal;
use pos_core::lottery::weigh;
use pos_core::lottery::{Ballot, Candidate};
use pos_core::weighting::Weighed;
use pos_core::{Address, Block, Command, Secret, Status, Validator};
use pos_store::{Store, StoreError};
use rand::RngCore;
use std::collections::BTreeMap;

/// The secret a round commits the next one to: 32 bytes from the OS RNG.
pub fn fresh_secret() -> Secret {
    let mut secret = Secret([0; 32]);
    rand::rngs::OsRng.fill_bytes(&mut secret.0);
    secret
}

/// Builds the `CommitRound` for these proposals on top of the current tip,
/// or `None` when no active validator proposed. The draw weighs them by the
/// chain's rule (reading the last `age_window` rounds under `stake_age`),
/// reveals the store's pending secret and commits to `next_secret`, which
/// the command carries so that applying it keeps it. The block is stamped
/// with `clock_ms`, or just after the tip if the clock is behind it.
pub fn prepare(
    store: &Store,
    proposals: &BTreeMap<Address, Proposal>,
    clock_ms: u64,
    reward: u64,
    next_secret: Secret,
) -> Result<Option<Command>, StoreError> {
    let (candidates, nonces) = candidates(store, proposals, reward, |v| {
        tracing::warn!(address = %v.address, balance = v.balance, reward,
            "validator cannot take the block reward without overflow; not a candidate");
    })?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let tip = store.tip()?;
    let weighting = store.chain_spec().weighting;
    let history = store.history(tip.index + 1, &weighting)?;
    let ballot = Ballot {
        weighting,
        candidates,
        nonces,
        history: &history,
    };
    let reveal = store.pending_secret()?;
    let cmd = Command::commit_weighted(&tip, ballot, reveal, next_secret, clock_ms, reward)
        .expect("candidates are non-empty, unique, staked; weights fit 128 bits");
    Ok(Some(cmd))
}

/// What a proposal of `candidate` with `nonce` weighs if the round closes
/// on the current tip: for the proposal's confirmation.
pub fn weight_now(
    store: &Store,
    candidate: &Candidate,
    nonce: Option<u64>,
) -> Result<Weighed, StoreError> {
    let tip = store.tip()?;
    Ok(weights_on(store, &tip, std::slice::from_ref(candidate), &[nonce])?[0])
}

/// What `candidates` (in address order) with `nonces` weigh in the round
/// of the block after `tip`: the open round's weights, for a proposal's
/// confirmation and the page's chance this round.
pub fn weights_on(
    store: &Store,
    tip: &Block,
    candidates: &[Candidate],
    nonces: &[Option<u64>],
) -> Result<Vec<Weighed>, StoreError> {
    let weighting = store.chain_spec().weighting;
    let history = store.history(tip.index + 1, &weighting)?;
    Ok(weigh(
        &weighting,
        &tip.hash,
        tip.index + 1,
        candidates,
        nonces,
        &history,
    ))
}

/// The candidates these proposals make in address order, with their nonces:
/// active, staked validators only. `overflow` hears of any skipped because
/// `reward` would overflow its balance.
pub fn candidates(
    store: &Store,
    proposals: &BTreeMap<Address, Proposal>,
    reward: u64,
    mut overflow: impl FnMut(&Validator),
) -> Result<(Vec<Candidate>, Vec<Option<u64>>), StoreError> {
    let mut candidates = Vec::with_capacity(proposals.len());
    let mut nonces = Vec::with_capacity(proposals.len());
    let mut proposed = proposals.iter();
    store.validators_at(proposals.keys(), |v| {
        let (&address, &Proposal { bpm, nonce }) = proposed.next().expect("one per proposal");
        // Slashed (or vanished) validators' proposals are dropped here.
        let Some(v) = v else {
            return;
        };
        if v.status() != Status::Active || v.balance == 0 {
            return;
        }
        // Only a data directory from before max_stake was bounded can hold
        // such a balance; skipping it keeps the round for everyone else.
        if !v.can_take(reward) {
            overflow(v);
            return;
        }
        candidates.push(Candidate {
            address,
            stake: v.balance,
            bpm,
        });
        nonces.push(nonce);
    });
    Ok((candidates, nonces))
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
        let bpm = |bpm| Proposal { bpm, nonce: None };
        let proposals = BTreeMap::from([(whale, bpm(70)), (small, bpm(80))]);
        let next = fresh_secret();
        let cmd = prepare(&store, &proposals, 1, 2, next).unwrap().unwrap();
        let Command::CommitRound { round, .. } = &cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(round.candidates.len(), 1);
        assert_eq!(round.winner().address, small);
        let Ok(Change::Validator(v)) = store.apply(&cmd).unwrap() else {
            panic!("round refused")
        };
        assert_eq!(v.balance, 3);
        // Applying the round kept the secret it handed on.
        assert_eq!(store.pending_secret().unwrap(), next);
        // A reward that fits keeps the whale in the draw (and it wins).
        let cmd = prepare(&store, &proposals, 2, 1, fresh_secret())
            .unwrap()
            .unwrap();
        let Ok(Change::Validator(v)) = store.apply(&cmd).unwrap() else {
            panic!("round refused")
        };
        assert_eq!(v.address, whale);
    }
}
