//! The state transition: what each [`Command`] does to the chain's state.
//!
//! This is the only place that says what a command means. A store provides
//! the records through [`State`] (pos-store does it inside one sled
//! transaction); [`apply`] decides, and writes only once it has decided, so a
//! refused command changes nothing. A refusal is a normal outcome, returned
//! in [`Outcome`]; only the state's own errors (a disk) are `Err`.

use crate::block::Block;
use crate::command::Command;
use crate::digest::Address;
use crate::ledger::{LedgerError, Status, Validator};
use crate::lottery::{RoundRecord, Secret};
use crate::verify::{check_round, Expect, VerifyError};
use crate::weighting::Weighting;

/// Validator totals, kept by the state so that limits and `status` cost O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active: u64,
    pub slashed: u64,
}

impl Counts {
    /// Every stored validator record.
    pub fn total(&self) -> u64 {
        self.active + self.slashed
    }
}

/// The records a command reads and writes. Methods take `&self` because a
/// transaction hands out shared handles; implementations buffer the writes.
pub trait State {
    type Error;
    fn validator(&self, address: &Address) -> Result<Option<Validator>, Self::Error>;
    /// Hands `each` the validator at every one of `addresses`, in order: a
    /// round's candidates, which a store may find faster together (and
    /// without copies) than one by one.
    fn validators_at<'a>(
        &self,
        addresses: impl ExactSizeIterator<Item = &'a Address> + Clone,
        mut each: impl FnMut(Option<&Validator>),
    ) -> Result<(), Self::Error> {
        for a in addresses {
            each(self.validator(a)?.as_ref());
        }
        Ok(())
    }
    fn put_validator(&self, validator: &Validator) -> Result<(), Self::Error>;
    fn tip(&self) -> Result<Block, Self::Error>;
    /// Stores `block` with the draw that made it, as the new tip.
    fn append(&self, block: &Block, round: &RoundRecord) -> Result<(), Self::Error>;
    /// The secret the next block's round reveals (its commitment is public
    /// already). Nothing may show it to anyone before that round closes.
    fn lottery_secret(&self) -> Result<Secret, Self::Error>;
    fn set_lottery_secret(&self, secret: &Secret) -> Result<(), Self::Error>;
    fn counts(&self) -> Result<Counts, Self::Error>;
    fn set_counts(&self, counts: Counts) -> Result<(), Self::Error>;
    /// Whether the validator ever proposed (see [`Command::Proposed`]).
    fn proposed(&self, address: &Address) -> Result<bool, Self::Error>;
    fn mark_proposed(&self, address: &Address, at_ms: u64) -> Result<(), Self::Error>;
    /// Since when proposals are recorded: validators registered earlier may
    /// have proposed unrecorded, so they are never forgotten.
    fn proposals_since_ms(&self) -> Result<u64, Self::Error>;
    fn remove_validator(&self, address: &Address) -> Result<(), Self::Error>;
    /// The chain's weighting rule (fixed at genesis).
    fn weighting(&self) -> Result<Weighting, Self::Error>;
    /// The record of block `index`'s round (a `stake_age` round reads the
    /// last `age_window` of them).
    fn round(&self, index: u64) -> Result<Option<RoundRecord>, Self::Error>;
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("validator limit reached ({max} validators)")]
    ValidatorLimit { max: u64 },
    /// The round does not fit the tip (e.g. a stale round) or its draw.
    #[error("round refused: {0}")]
    Round(#[from] VerifyError),
    /// A candidate is not what the store says (unknown, slashed, other stake).
    #[error("round refused: candidate {address}: {why}")]
    Candidate { address: Address, why: &'static str },
    /// The round's next commitment is not the command's next secret's.
    #[error("round refused: it does not commit to the secret it hands on")]
    NextCommitment,
}

/// What an applied command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The validator as it is now (registered, slashed, rewarded, marked).
    Validator(Validator),
    /// The validators removed by [`Command::Forget`].
    Forgotten(Vec<Address>),
}

/// A command's outcome: what it changed, or why it changed nothing.
pub type Outcome = Result<Change, Refusal>;

/// Applies `cmd` to `state`: what it changed, or why it changed nothing.
pub fn apply<S: State>(state: &S, cmd: &Command) -> Result<Outcome, S::Error> {
    Ok(match cmd {
        Command::Proposed { address, at_ms } => {
            let Some(v) = state.validator(address)? else {
                return Ok(Err(LedgerError::Unknown(*address).into()));
            };
            if !state.proposed(address)? {
                state.mark_proposed(address, *at_ms)?;
            }
            Ok(Change::Validator(v))
        }
        Command::Forget {
            addresses,
            registered_by_ms,
        } => forget(state, addresses, *registered_by_ms)?,
        _ => apply_ledger(state, cmd)?.map(Change::Validator),
    })
}

/// Removes each of `addresses` that still qualifies (see [`Command::Forget`]).
fn forget<S: State>(
    state: &S,
    addresses: &[Address],
    registered_by_ms: u64,
) -> Result<Outcome, S::Error> {
    let since = state.proposals_since_ms()?;
    let mut gone = Vec::new();
    for address in addresses {
        let Some(v) = state.validator(address)? else {
            continue;
        };
        let idle = v.status() == Status::Active
            && v.blocks_won == 0
            && (since..=registered_by_ms).contains(&v.registered_at_ms)
            && !state.proposed(address)?;
        if idle {
            state.remove_validator(address)?;
            gone.push(*address);
        }
    }
    let counts = state.counts()?;
    state.set_counts(Counts {
        active: counts.active.saturating_sub(gone.len() as u64),
        ..counts
    })?;
    Ok(Ok(Change::Forgotten(gone)))
}

/// Registration, slashing and rounds: each changes one validator.
fn apply_ledger<S: State>(
    state: &S,
    cmd: &Command,
) -> Result<Result<Validator, Refusal>, S::Error> {
    match cmd {
        Command::Register {
            address,
            stake,
            max_stake,
            max_validators,
            at_ms,
        } => {
            let counts = state.counts()?;
            let existing = state.validator(address)?;
            if existing.is_none() && counts.total() >= *max_validators {
                return Ok(Err(Refusal::ValidatorLimit {
                    max: *max_validators,
                }));
            }
            let v = match Validator::register(
                existing.as_ref(),
                *address,
                *stake,
                *max_stake,
                *at_ms,
            ) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e.into())),
            };
            state.put_validator(&v)?;
            state.set_counts(Counts {
                active: counts.active + 1,
                ..counts
            })?;
            Ok(Ok(v))
        }
        Command::Slash {
            address,
            reason,
            at_ms,
        } => {
            let Some(mut v) = state.validator(address)? else {
                return Ok(Err(LedgerError::Unknown(*address).into()));
            };
            if let Err(e) = v.slash(*at_ms, reason.clone()) {
                return Ok(Err(e.into()));
            }
            let counts = state.counts()?;
            state.put_validator(&v)?;
            state.set_counts(Counts {
                active: counts.active.saturating_sub(1),
                slashed: counts.slashed + 1,
            })?;
            Ok(Ok(v))
        }
        Command::CommitRound {
            block,
            round,
            reward,
            next_secret,
        } => {
            let tip = state.tip()?;
            let revealed = state.lottery_secret()?;
            if let Err(refusal) = round_fits(state, &tip, block, round, &revealed)? {
                return Ok(Err(refusal));
            }
            if round.rule.next_commitment() != Some(next_secret.commitment()) {
                return Ok(Err(Refusal::NextCommitment));
            }
            let winner = round.winner();
            let Some(mut v) = state.validator(&winner.address)? else {
                return Ok(Err(LedgerError::Unknown(winner.address).into()));
            };
            if let Err(e) = v.reward(*reward) {
                return Ok(Err(e.into()));
            }
            state.append(block, round)?;
            state.set_lottery_secret(next_secret)?;
            state.put_validator(&v)?;
            Ok(Ok(v))
        }
        Command::Proposed { .. } | Command::Forget { .. } => {
            unreachable!("apply handles them before the ledger")
        }
    }
}

/// A round may commit only on the tip it was drawn from, with a v2 draw
/// that reveals the pending `secret` and replays, a winner that is the
/// block's, and candidates exactly as stored.
fn round_fits<S: State>(
    state: &S,
    tip: &Block,
    block: &Block,
    round: &RoundRecord,
    secret: &Secret,
) -> Result<Result<(), Refusal>, S::Error> {
    let weighting = state.weighting()?;
    // The rounds the draw reads: none under `stake`, whose check would
    // otherwise decode the last round's whole table for nothing.
    let mut history = Vec::new();
    for index in (tip.index + 1).saturating_sub(weighting.history()).max(1)..=tip.index {
        history.extend(state.round(index)?);
    }
    let expect = Expect {
        commitment: Some(&secret.commitment()),
        weighting: &weighting,
        history: &history,
    };
    if let Err(e) = check_round(tip, block, round, expect) {
        return Ok(Err(e.into()));
    }
    let mut first_unfit = None;
    let mut candidates = round.candidates.iter();
    let addresses = round.candidates.iter().map(|c| &c.address);
    state.validators_at(addresses, |stored| {
        let c = candidates.next().expect("one validator per candidate");
        let why = match stored {
            None => "not registered",
            Some(v) if v.status() != Status::Active => "slashed",
            Some(v) if v.balance != c.stake => "stake differs from its balance",
            Some(_) => return,
        };
        first_unfit.get_or_insert(Refusal::Candidate {
            address: c.address,
            why,
        });
    })?;
    Ok(first_unfit.map_or(Ok(()), Err))
}

#[cfg(test)]
pub(crate) mod memory {
    //! A state in memory: the model the sled store is tested against.

    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Memory {
        pub validators: RefCell<BTreeMap<Address, Validator>>,
        pub blocks: RefCell<Vec<(Block, Option<RoundRecord>)>>,
        pub counts: RefCell<Counts>,
        pub proposed: RefCell<BTreeMap<Address, u64>>,
        pub secret: RefCell<Secret>,
        pub weighting: Weighting,
    }

    impl Memory {
        /// A chain of `genesis` alone whose first round will reveal `secret`.
        pub fn new(genesis: Block, secret: Secret) -> Memory {
            Memory {
                validators: RefCell::default(),
                blocks: RefCell::new(vec![(genesis, None)]),
                counts: RefCell::default(),
                proposed: RefCell::default(),
                secret: RefCell::new(secret),
                weighting: Weighting::Stake,
            }
        }
    }

    impl State for Memory {
        type Error = std::convert::Infallible;
        fn validator(&self, a: &Address) -> Result<Option<Validator>, Self::Error> {
            Ok(self.validators.borrow().get(a).cloned())
        }
        fn put_validator(&self, v: &Validator) -> Result<(), Self::Error> {
            self.validators.borrow_mut().insert(v.address, v.clone());
            Ok(())
        }
        fn tip(&self) -> Result<Block, Self::Error> {
            Ok(self.blocks.borrow().last().expect("genesis").0.clone())
        }
        fn append(&self, block: &Block, round: &RoundRecord) -> Result<(), Self::Error> {
            self.blocks
                .borrow_mut()
                .push((block.clone(), Some(round.clone())));
            Ok(())
        }
        fn lottery_secret(&self) -> Result<Secret, Self::Error> {
            Ok(*self.secret.borrow())
        }
        fn set_lottery_secret(&self, secret: &Secret) -> Result<(), Self::Error> {
            *self.secret.borrow_mut() = *secret;
            Ok(())
        }
        fn counts(&self) -> Result<Counts, Self::Error> {
            Ok(*self.counts.borrow())
        }
        fn set_counts(&self, counts: Counts) -> Result<(), Self::Error> {
            *self.counts.borrow_mut() = counts;
            Ok(())
        }
        fn proposed(&self, a: &Address) -> Result<bool, Self::Error> {
            Ok(self.proposed.borrow().contains_key(a))
        }
        fn mark_proposed(&self, a: &Address, at_ms: u64) -> Result<(), Self::Error> {
            self.proposed.borrow_mut().insert(*a, at_ms);
            Ok(())
        }
        fn proposals_since_ms(&self) -> Result<u64, Self::Error> {
            Ok(0)
        }
        fn remove_validator(&self, a: &Address) -> Result<(), Self::Error> {
            self.validators.borrow_mut().remove(a);
            Ok(())
        }
        fn weighting(&self) -> Result<Weighting, Self::Error> {
            Ok(self.weighting)
        }
        fn round(&self, index: u64) -> Result<Option<RoundRecord>, Self::Error> {
            let blocks = self.blocks.borrow();
            Ok(blocks.get(index as usize).and_then(|(_, r)| r.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::Memory;
    use super::*;
    use crate::digest::Digest;
    use crate::lottery::{Candidate, Rule};

    fn addr(n: u8) -> Address {
        Address(Digest([n; 32]))
    }

    fn fresh() -> Memory {
        Memory::new(Block::genesis(1), Secret([0; 32]))
    }

    /// The secret handed on after block `index`, as a proposer would draw it.
    fn secret_after(index: u64) -> Secret {
        Secret(Digest::of(&index.to_be_bytes()).0)
    }

    fn register(state: &Memory, n: u8, stake: u64, max_validators: u64) -> Outcome {
        let cmd = Command::Register {
            address: addr(n),
            stake,
            max_stake: 1_000,
            max_validators,
            at_ms: 5,
        };
        apply(state, &cmd).unwrap()
    }

    fn round_on(state: &Memory, stakes: &[(u8, u64)]) -> Command {
        let tip = state.tip().unwrap();
        let candidates = stakes
            .iter()
            .map(|&(n, stake)| Candidate {
                address: addr(n),
                stake,
                bpm: 60 + n as u32,
            })
            .collect();
        let reveal = state.lottery_secret().unwrap();
        let next = secret_after(tip.index + 1);
        Command::commit_round(&tip, candidates, reveal, next, 0, 1).unwrap()
    }

    #[test]
    fn a_refused_command_changes_nothing() {
        let state = fresh();
        register(&state, 1, 10, 10).unwrap();
        let before = state.clone();
        assert!(matches!(
            register(&state, 1, 10, 10),
            Err(Refusal::Ledger(LedgerError::AlreadyRegistered(_)))
        ));
        assert!(register(&state, 2, 0, 10).is_err());
        assert_eq!(state, before);
    }

    #[test]
    fn the_validator_limit_counts_every_record() {
        let state = fresh();
        register(&state, 1, 10, 2).unwrap();
        register(&state, 2, 10, 2).unwrap();
        let slash = Command::Slash {
            address: addr(2),
            reason: "test".into(),
            at_ms: 6,
        };
        apply(&state, &slash).unwrap().unwrap();
        assert_eq!(
            register(&state, 3, 10, 2),
            Err(Refusal::ValidatorLimit { max: 2 })
        );
    }

    #[test]
    fn a_round_commits_only_as_drawn_on_the_tip() {
        let state = fresh();
        register(&state, 1, 10, 10).unwrap();
        register(&state, 2, 20, 10).unwrap();
        let good = round_on(&state, &[(1, 10), (2, 20)]);

        // A candidate whose stake is not its balance.
        let lying = round_on(&state, &[(1, 10), (2, 99)]);
        assert!(matches!(
            apply(&state, &lying).unwrap(),
            Err(Refusal::Candidate {
                why: "stake differs from its balance",
                ..
            })
        ));
        // An unknown candidate.
        let stranger = round_on(&state, &[(1, 10), (7, 5)]);
        assert!(matches!(
            apply(&state, &stranger).unwrap(),
            Err(Refusal::Candidate {
                why: "not registered",
                ..
            })
        ));
        // A winner other than the draw's.
        let mut forged = good.clone();
        if let Command::CommitRound { round, .. } = &mut forged {
            round.winner = 1 - round.winner;
        }
        assert!(matches!(
            apply(&state, &forged).unwrap(),
            Err(Refusal::Round(_))
        ));

        // A round that reveals another secret than the pending one.
        let mut guessed = good.clone();
        if let Command::CommitRound { round, .. } = &mut guessed {
            if let Rule::V2 { reveal, .. } = &mut round.rule {
                reveal.0[0] ^= 1;
            }
        }
        assert!(matches!(
            apply(&state, &guessed).unwrap(),
            Err(Refusal::Round(VerifyError::Draw { .. }))
        ));
        // A round handing on a secret it did not commit to.
        let mut switched = good.clone();
        if let Command::CommitRound { next_secret, .. } = &mut switched {
            next_secret.0[0] ^= 1;
        }
        assert_eq!(
            apply(&state, &switched).unwrap(),
            Err(Refusal::NextCommitment)
        );

        apply(&state, &good).unwrap().unwrap();
        assert_eq!(*state.secret.borrow(), secret_after(1));
        // The same round again is stale: it no longer fits the tip.
        assert!(matches!(
            apply(&state, &good).unwrap(),
            Err(Refusal::Round(VerifyError::BadIndex { .. }))
        ));
        assert_eq!(state.blocks.borrow().len(), 2);
    }

    #[test]
    fn only_the_idle_are_forgotten() {
        let state = fresh();
        for n in 1..=4 {
            register(&state, n, 10, 10).unwrap();
        }
        let proposed = Command::Proposed {
            address: addr(2),
            at_ms: 6,
        };
        apply(&state, &proposed).unwrap().unwrap();
        apply(&state, &round_on(&state, &[(3, 10)]))
            .unwrap()
            .unwrap();
        let slash = Command::Slash {
            address: addr(4),
            reason: "x".into(),
            at_ms: 6,
        };
        apply(&state, &slash).unwrap().unwrap();
        let all: Vec<Address> = (1..=5).map(addr).collect();
        let too_early = Command::Forget {
            addresses: all.clone(),
            registered_by_ms: 4,
        };
        assert_eq!(
            apply(&state, &too_early).unwrap(),
            Ok(Change::Forgotten(vec![]))
        );
        let forget = Command::Forget {
            addresses: all,
            registered_by_ms: 5,
        };
        // 2 proposed, 3 won a block, 4 is slashed (kept as evidence), 5 never existed.
        assert_eq!(
            apply(&state, &forget).unwrap(),
            Ok(Change::Forgotten(vec![addr(1)]))
        );
        assert_eq!(
            *state.counts.borrow(),
            Counts {
                active: 2,
                slashed: 1
            }
        );
    }

    /// One generated command, over a small address space so that they collide.
    #[derive(Debug, Clone)]
    enum Op {
        Register(u8, u64),
        Slash(u8),
        /// A round over these validators; `true` lies about the stake.
        Round(Vec<u8>, bool),
        Proposed(u8),
        Forget(Vec<u8>, u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, 0..30u64).prop_map(|(n, s)| Op::Register(n, s)),
            (0..6u8).prop_map(Op::Slash),
            (proptest::collection::btree_set(0..6u8, 1..4), any::<bool>())
                .prop_map(|(set, lie)| Op::Round(set.into_iter().collect(), lie)),
            (0..6u8).prop_map(Op::Proposed),
            (proptest::collection::vec(0..6u8, 0..4), 0..20u64)
                .prop_map(|(ns, by)| Op::Forget(ns, by)),
        ]
    }

    fn command(state: &Memory, op: &Op) -> Command {
        match op {
            Op::Register(n, stake) => Command::Register {
                address: addr(*n),
                stake: *stake,
                max_stake: 20,
                max_validators: 4,
                at_ms: 9,
            },
            Op::Slash(n) => Command::Slash {
                address: addr(*n),
                reason: "malformed".into(),
                at_ms: 9,
            },
            Op::Round(ns, lie) => {
                let stakes: Vec<(u8, u64)> = ns
                    .iter()
                    .map(|n| {
                        let balance = state.validator(&addr(*n)).unwrap().map_or(1, |v| v.balance);
                        (*n, balance.max(1) + u64::from(*lie))
                    })
                    .collect();
                round_on(state, &stakes)
            }
            Op::Proposed(n) => Command::Proposed {
                address: addr(*n),
                at_ms: 9,
            },
            Op::Forget(ns, by) => Command::Forget {
                addresses: ns.iter().map(|n| addr(*n)).collect(),
                registered_by_ms: *by,
            },
        }
    }

    proptest::proptest! {
        /// Same commands, same state: the transition depends on nothing else.
        /// And whatever is refused leaves the state exactly as it was.
        #[test]
        fn same_commands_same_state(ops in proptest::collection::vec(op(), 0..40)) {
            let (a, b) = (fresh(), fresh());
            for op in &ops {
                let cmd = command(&a, op);
                let before = a.clone();
                let outcome = apply(&a, &cmd).unwrap();
                proptest::prop_assert_eq!(&apply(&b, &cmd).unwrap(), &outcome);
                if outcome.is_err() {
                    proptest::prop_assert_eq!(&a, &before);
                }
                proptest::prop_assert_eq!(&a, &b);
            }
            let counts = *a.counts.borrow();
            proptest::prop_assert_eq!(counts.total(), a.validators.borrow().len() as u64);
        }
    }
}
