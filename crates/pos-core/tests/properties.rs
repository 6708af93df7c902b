//! Properties of the lottery and the ledger over generated inputs.

use pos_core::lottery::{draw, Candidate, Rule, Secret};
use pos_core::{Address, Digest, Status, Validator};
use proptest::prelude::*;

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::btree_map(any::<[u8; 32]>(), (1..=u64::MAX, 0..=1000u32), 1..40).prop_map(
        |m| {
            m.into_iter()
                .map(|(a, (stake, bpm))| Candidate {
                    address: Address(Digest(a)),
                    stake,
                    bpm,
                })
                .collect()
        },
    )
}

/// One ledger operation.
#[derive(Debug, Clone)]
enum Op {
    Reward(u64),
    Slash,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![(0..1_000_000u64).prop_map(Op::Reward), Just(Op::Slash)],
        0..30,
    )
}

proptest! {
    #[test]
    fn draws_are_valid_replayable_and_order_free(
        cands in candidates(),
        prev in any::<[u8; 32]>(),
        index in 1..u64::MAX,
        rotate in 0usize..40,
        reveal in proptest::option::of(any::<[u8; 32]>()),
    ) {
        let prev = Digest(prev);
        let rule = match reveal {
            None => Rule::V1,
            Some(r) => Rule::V2 { reveal: Secret(r), next_commitment: Digest::default() },
        };
        let commitment = reveal.map(|r| Secret(r).commitment());
        let r = draw(&prev, index, rule.clone(), cands.clone()).unwrap();
        prop_assert!(r.ticket < r.total_stake());
        prop_assert!(r.candidates.windows(2).all(|w| w[0].address < w[1].address));
        let below: u128 = r.candidates[..r.winner].iter().map(|c| c.stake as u128).sum();
        prop_assert!(below <= r.ticket && r.ticket < below + r.winner().stake as u128);
        prop_assert!(r.replay(&prev, commitment.as_ref()).is_ok());
        let mut shuffled = cands;
        let k = rotate % shuffled.len();
        shuffled.rotate_left(k);
        prop_assert_eq!(draw(&prev, index, rule, shuffled).unwrap(), r);
    }

    #[test]
    fn ledger_rules_hold(stake in 1..=u64::MAX, ops in ops()) {
        let mut v = Validator::register(None, Address(Digest([1; 32])), stake, u64::MAX, 0).unwrap();
        let mut expected_balance = stake as u128;
        let mut won = 0u64;
        for op in ops {
            let before = v.clone();
            match op {
                Op::Reward(r) => match v.reward(r) {
                    Ok(()) => {
                        expected_balance += r as u128;
                        won += 1;
                    }
                    // Refused (slashed or overflow): nothing changed.
                    Err(_) => prop_assert_eq!(&v, &before),
                },
                Op::Slash => match v.slash(1, "x".into()) {
                    Ok(()) => {
                        prop_assert_eq!(v.slashed.as_ref().unwrap().forfeited as u128, expected_balance);
                        expected_balance = 0;
                    }
                    Err(_) => prop_assert_eq!(&v, &before),
                },
            }
            prop_assert_eq!(v.balance as u128, expected_balance);
            prop_assert_eq!(v.blocks_won, won);
            if v.status() == Status::Slashed {
                prop_assert_eq!(v.balance, 0);
            }
        }
    }
}
