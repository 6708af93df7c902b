//! The weightings' measured limits (SPEC §12, docs/LOTTERY.md), by
//! simulating thousands of rounds of the real draw: every number these tests
//! print is what the docs quote, and every bound they assert is the docs'.
//! Run with `cargo test -p pos-core --test weighting_sim -- --nocapture`.

use pos_core::lottery::{draw_weighted, Ballot, Candidate, RoundRecord, Rule};
use pos_core::weighting::{work_weight, work_zeros};
use pos_core::{Address, Digest, Weighting};
use std::collections::HashMap;

const ROUNDS: u64 = 4_000;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn cand(n: u8, stake: u64) -> Candidate {
    Candidate {
        address: addr(n),
        stake,
        bpm: 60 + n as u32,
    }
}

/// χ² critical values at p = 0.001, by degrees of freedom (1 to 9).
const CHI2_001: [f64; 9] = [
    10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877,
];

/// Wins and the sum over rounds of weight/total, per address.
#[derive(Default)]
struct Tally {
    wins: HashMap<Address, f64>,
    expected: HashMap<Address, f64>,
}

impl Tally {
    fn add(&mut self, r: &RoundRecord) {
        let total = r.total_weight() as f64;
        for (i, c) in r.candidates.iter().enumerate() {
            *self.expected.entry(c.address).or_default() += r.weight(i) as f64 / total;
            self.wins.entry(c.address).or_default();
        }
        *self.wins.entry(r.winner().address).or_default() += 1.0;
    }

    /// Conditional χ² of wins against expected wins, asserted below the
    /// p = 0.001 critical value; returns the statistic.
    fn chi2(&self, what: &str) -> f64 {
        let chi2: f64 = self
            .expected
            .iter()
            .map(|(a, e)| (self.wins[a] - e).powi(2) / e)
            .sum();
        let critical = CHI2_001[self.expected.len() - 2];
        assert!(chi2 < critical, "{what}: chi2 {chi2:.2} ≥ {critical}");
        chi2
    }

    fn share(&self, addresses: &[Address]) -> f64 {
        let wins: f64 = addresses.iter().map(|a| self.wins[a]).sum();
        wins / self.wins.values().sum::<f64>()
    }
}

/// Runs `rounds` rounds from `first`; `who(index)` gives the candidates and
/// their nonces (none: the round makes no block, as in posd). Each block's
/// hash is a hash of the previous one and the winner, so the seeds follow
/// the chain as they would in posd.
fn run(
    weighting: Weighting,
    first: u64,
    rounds: u64,
    history: &mut Vec<RoundRecord>,
    mut who: impl FnMut(&Digest, u64) -> (Vec<Candidate>, Vec<Option<u64>>),
) -> Tally {
    let mut tally = Tally::default();
    let mut prev = Digest::of(format!("genesis {first}").as_bytes());
    for index in first..first + rounds {
        let (candidates, nonces) = who(&prev, index);
        if candidates.is_empty() {
            continue;
        }
        let window = weighting.history() as usize;
        let from = history.len().saturating_sub(window);
        let ballot = Ballot {
            weighting,
            candidates,
            nonces,
            history: &history[from..],
        };
        let r = draw_weighted(&prev, index, Rule::V1, ballot).unwrap();
        tally.add(&r);
        prev = Digest::of(&[prev.0, r.winner().address.0 .0].concat());
        history.push(r);
    }
    tally
}

const AGE: Weighting = Weighting::StakeAge { age_window: 10 };

/// A validator that proposes for 50 rounds, stays silent for 100 and comes
/// back: its first weight is its stake (age 0), since only rounds it
/// proposed in count and they have all left the window.
#[test]
fn silent_validator_returns_at_weight_stake() {
    let mut history = Vec::new();
    let everyone = |n: u8| (1..=n).map(|i| cand(i, 100)).collect::<Vec<_>>();
    run(AGE, 1, 50, &mut history, |_, _| (everyone(4), vec![]));
    let before = history.iter().map(|r| r.weight(0)).max().unwrap();
    run(AGE, 51, 100, &mut history, |_, _| {
        (everyone(4)[1..].to_vec(), vec![])
    });
    run(AGE, 151, 1, &mut history, |_, _| (everyone(4), vec![]));
    let back = history.last().unwrap();
    assert_eq!(back.candidates[0].address, addr(1));
    assert_eq!(back.weight(0), 100, "returns at weight = stake");
    println!(
        "stake_age window 10, stake 100: highest weight before silence {before}, after 100 silent rounds {}",
        back.weight(0)
    );
    assert!(before > 100, "it had age before its silence");
}

/// 20 % of the stake as one validator, or split over five: the share of
/// blocks it wins against four honest validators of 20 each.
#[test]
fn stake_age_split_gain() {
    let honest: Vec<Candidate> = (1..=4).map(|i| cand(i, 200)).collect();
    let whole = [cand(10, 200)];
    let split: Vec<Candidate> = (10..15).map(|i| cand(i, 40)).collect();
    let mut shares = Vec::new();
    for (name, attacker) in [
        ("one validator", &whole[..]),
        ("five validators", &split[..]),
    ] {
        let all: Vec<Candidate> = honest.iter().chain(attacker).cloned().collect();
        let tally = run(AGE, 1, ROUNDS, &mut Vec::new(), |_, _| {
            (all.clone(), vec![])
        });
        let ours: Vec<Address> = attacker.iter().map(|c| c.address).collect();
        let share = tally.share(&ours);
        let chi2 = tally.chi2(name);
        println!("stake_age window 10, 20 % of stake as {name}: {:.1} % of {ROUNDS} blocks (chi2 {chi2:.2})", share * 100.0);
        shares.push(share);
    }
    // By stake alone both would win 20 %. One validator's age resets at
    // each of its wins; five keep their ages between each other's wins.
    assert!(
        (0.17..0.23).contains(&shares[0]),
        "one validator: {}",
        shares[0]
    );
    assert!(shares[1] > shares[0] + 0.05, "splitting gains: {shares:?}");
    assert!(shares[1] < 0.40, "the gain is bounded: {shares:?}");
}

/// The most zeros among `tries` nonces from `start`.
fn best(prev: &Digest, index: u64, c: &Candidate, start: u64, tries: u64) -> (u64, u32) {
    (start..start + tries)
        .map(|n| (n, work_zeros(prev, index, &c.address, c.bpm, n)))
        .max_by_key(|&(_, z)| z)
        .unwrap()
}

/// P(the best of `tries` nonces has at least `k` leading zeros).
fn at_least(k: u32, tries: f64) -> f64 {
    1.0 - (1.0 - 0.5f64.powi(k as i32)).powf(tries)
}

/// The share of rounds the formula expects `a` tries to win against `b`
/// tries at equal stakes: E[w_a / (w_a + w_b)] over both best-of laws.
fn expected_share(a: f64, b: f64, bits: u32, max: u32) -> f64 {
    let p = |k: u32, tries: f64| at_least(k, tries) - at_least(k + 1, tries);
    let mut share = 0.0;
    for za in 0..64 {
        for zb in 0..64 {
            let wa = work_weight(1, za, bits, max) as f64;
            let wb = work_weight(1, zb, bits, max) as f64;
            share += p(za, a) * p(zb, b) * wa / (wa + wb);
        }
    }
    share
}

/// Equal stakes; one side tries 10× the nonces per round (160 against 16,
/// work_bits 4: the other side meets the bar about once a round).
#[test]
fn stake_work_ten_times_the_nonces() {
    let (bits, max) = (4, 4);
    let work = Weighting::StakeWork {
        work_bits: bits,
        work_bonus_max: max,
    };
    let (miner, other) = (cand(1, 100), cand(2, 100));
    let tally = run(work, 1, ROUNDS, &mut Vec::new(), |prev, index| {
        let (n1, _) = best(prev, index, &miner, 0, 160);
        let (n2, _) = best(prev, index, &other, 0, 16);
        (vec![miner.clone(), other.clone()], vec![Some(n1), Some(n2)])
    });
    let share = tally.share(&[miner.address]);
    let chi2 = tally.chi2("stake_work");
    let expected = expected_share(160.0, 16.0, bits, max);
    let cap = (1u32 << max) as f64 / ((1u32 << max) as f64 + 1.0);
    let sigma = (expected * (1.0 - expected) / ROUNDS as f64).sqrt();
    println!(
        "stake_work bits {bits} max {max}, 10x nonces: {:.1} % of {ROUNDS} rounds; formula {:.1} % (±{:.1}), cap 2^b/(2^b+1) = {:.1} % (chi2 {chi2:.2})",
        share * 100.0,
        expected * 100.0,
        3.0 * sigma * 100.0,
        cap * 100.0
    );
    assert!(
        (share - expected).abs() < 4.0 * sigma,
        "{share} vs {expected}"
    );
    assert!(share < cap);
}

/// The plain `stake` rule under the same harness: wins match stakes.
#[test]
fn stake_chi2() {
    let all: Vec<Candidate> = (1..=5).map(|i| cand(i, 100 * i as u64)).collect();
    let tally = run(Weighting::Stake, 1, ROUNDS, &mut Vec::new(), |_, _| {
        (all.clone(), vec![])
    });
    println!(
        "stake, 5 validators, {ROUNDS} rounds: chi2 {:.2}",
        tally.chi2("stake")
    );
}

/// Both new rules with proposers coming and going: five validators of
/// stakes 1, 2, 3, 4 and 10, each a candidate in a round with chance 3/4,
/// a work proposer trying 1 to 16 nonces and keeping its best. Wins follow
/// Σ weight/total over 3,000 rounds (χ² p > 0.001, 4 df), and the rule moved
/// the odds away from stake alone.
#[test]
fn wins_follow_weights_round_by_round() {
    let stakes = [1u64, 2, 3, 4, 10];
    let rules = [
        Weighting::StakeAge { age_window: 10 },
        Weighting::StakeWork {
            work_bits: 2,
            work_bonus_max: 4,
        },
    ];
    for weighting in rules {
        let tally = run(weighting, 1, 3_000, &mut Vec::new(), |prev, index| {
            // Who proposes, and with how many nonces, depends on the round.
            let roll = Digest::of(&index.to_le_bytes());
            let candidates: Vec<_> = (0..5)
                .filter(|&i| !roll.0[i].is_multiple_of(4))
                .map(|i| cand(i as u8 + 1, stakes[i]))
                .collect();
            let nonces = candidates
                .iter()
                .enumerate()
                .map(|(k, c)| Some(best(prev, index, c, 0, 1 + (roll.0[8 + k] % 16) as u64).0))
                .collect();
            (candidates, nonces)
        });
        let chi2 = tally.chi2(&weighting.to_string());
        println!("{weighting}, 5 validators coming and going, 3000 rounds: chi2 {chi2:.2}");
        let rounds: f64 = tally.wins.values().sum();
        let by_stake = stakes[4] as f64 / 20.0 * rounds;
        let expected = tally.expected[&addr(5)];
        assert!(
            (expected - by_stake).abs() > 10.0,
            "{weighting}: {expected} expected wins, {by_stake} by stake"
        );
    }
}
