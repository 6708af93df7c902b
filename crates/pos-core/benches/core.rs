//! Block hashing and the lottery at 1k / 100k / 1M candidates.
//!
//! cargo bench -p pos-core --bench core

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use pos_core::lottery::roster::Roster;
use pos_core::lottery::{draw, draw_weighted, Ballot, Candidate, RoundRecord, Rule};
use pos_core::Weighting;
use pos_core::{Address, Block, Digest};

fn hashing(c: &mut Criterion) {
    let genesis = Block::genesis(1_795_000_000_000);
    let block = Block::next(&genesis, 1_795_000_030_000, 72, Address(Digest::of(b"v")));
    c.bench_function("block/hash", |b| {
        b.iter(|| black_box(&block).compute_hash())
    });
}

/// `n` candidates with distinct addresses and stakes up to `max_stake`,
/// sorted by address as posd hands them over, or shuffled.
fn candidates(n: usize, max_stake: u64, sorted: bool) -> Vec<Candidate> {
    let mut v: Vec<Candidate> = (0..n as u64)
        .map(|i| {
            let h = Digest::of(&i.to_be_bytes());
            let stake = 1 + u64::from_be_bytes(h.0[..8].try_into().unwrap()) % max_stake;
            Candidate {
                address: Address(h),
                stake,
                bpm: (i % 200) as u32,
            }
        })
        .collect();
    if sorted {
        v.sort_unstable_by_key(|c| c.address);
    }
    v
}

fn lottery(c: &mut Criterion) {
    let prev = Digest::of(b"tip");
    let mut group = c.benchmark_group("lottery");
    group.sample_size(20);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let big = candidates(n, 1_000_000_000_000, true);
        let tiny = candidates(n, 1, true);
        let shuffled = candidates(n, 1_000_000_000_000, false);
        // build + draw: a fresh candidate table (what a round allocates), then the draw.
        group.bench_with_input(
            BenchmarkId::new("build+draw/stake<=1e12", n),
            &big,
            |b, input| b.iter(|| draw(&prev, 7, Rule::V1, input.clone()).unwrap().winner),
        );
        group.bench_with_input(
            BenchmarkId::new("build+draw/stake=1", n),
            &tiny,
            |b, input| b.iter(|| draw(&prev, 7, Rule::V1, input.clone()).unwrap().winner),
        );
        // The draw alone: the table is built outside the timing.
        group.bench_with_input(BenchmarkId::new("draw/stake<=1e12", n), &big, |b, input| {
            b.iter_batched(
                || input.clone(),
                |table| draw(&prev, 7, Rule::V1, table).unwrap(),
                BatchSize::LargeInput,
            )
        });
        // The bound: building the table alone (allocating and filling it).
        group.bench_with_input(BenchmarkId::new("build-only", n), &big, |b, input| {
            b.iter(|| input.clone())
        });
        // Candidates in no order pay for the sort.
        group.bench_with_input(
            BenchmarkId::new("build+draw/unsorted", n),
            &shuffled,
            |b, input| b.iter(|| draw(&prev, 7, Rule::V1, input.clone()).unwrap().winner),
        );
    }
    group.finish();
}

/// The draw under each weighting at 10,000 candidates, and under stake_age
/// at 1,000,000 (its ages read the last `age_window` records, each holding
/// every candidate: the worst case, never the chain's length); and the
/// replay of each draw's record, as the apply checks it.
fn weighted(c: &mut Criterion) {
    let prev = Digest::of(b"tip");
    let mut group = c.benchmark_group("weighted");
    group.sample_size(10);
    for n in [10_000usize, 1_000_000] {
        let table = candidates(n, 1_000_000_000_000, true);
        let history: Vec<RoundRecord> = (1..=10u64)
            .map(|i| draw(&prev, i, Rule::V1, table.clone()).unwrap())
            .collect();
        for weighting in rules() {
            if n > 10_000 && !matches!(weighting, Weighting::StakeAge { .. }) {
                continue;
            }
            let nonces: Vec<_> = match weighting {
                Weighting::StakeWork { .. } => (0..n as u64).map(Some).collect(),
                _ => Vec::new(),
            };
            let id = BenchmarkId::new(format!("build+draw/{}", weighting.name()), n);
            group.bench_with_input(id, &table, |b, input| {
                b.iter(|| {
                    let ballot = Ballot {
                        weighting,
                        candidates: input.clone(),
                        nonces: nonces.clone(),
                        history: &history,
                    };
                    draw_weighted(&prev, 11, Rule::V1, ballot).unwrap().winner
                })
            });
            // The weight check at apply: the stored record replayed, every
            // weight recomputed from its candidates, nonces and history.
            let ballot = Ballot {
                weighting,
                candidates: table.clone(),
                nonces: nonces.clone(),
                history: &history,
            };
            let record = draw_weighted(&prev, 11, Rule::V1, ballot).unwrap();
            let id = BenchmarkId::new(format!("replay/{}", weighting.name()), n);
            group.bench_with_input(id, &record, |b, record| {
                b.iter(|| record.replay_after(&prev, None, &history).unwrap())
            });
        }
    }
    group.finish();
}

/// Build + draw at the round close as posd does it, at 1,000,000
/// candidates under each rule: the proposals arrive in address order with
/// their stakes (and, under stake_work, a nonce each), the round's table is
/// built from them and drawn. stake_age reads ten records holding every
/// candidate (the worst case).
fn round_close(c: &mut Criterion) {
    let prev = Digest::of(b"tip");
    let n = 1_000_000usize;
    let table = candidates(n, 1_000_000_000_000, true);
    let history: Vec<RoundRecord> = (1..=10u64)
        .map(|i| draw(&prev, i, Rule::V1, table.clone()).unwrap())
        .collect();
    let mut group = c.benchmark_group("round-close");
    group.sample_size(10);
    for weighting in rules() {
        let work = matches!(weighting, Weighting::StakeWork { .. });
        let proposals: Vec<(Candidate, Option<u64>)> = table
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), work.then_some(i as u64)))
            .collect();
        // A fresh table per round, as posd's round close builds it.
        let id = BenchmarkId::new(format!("fresh/{}", weighting.name()), n);
        group.bench_with_input(id, &proposals, |b, input| {
            b.iter(|| {
                let mut candidates = Vec::with_capacity(input.len());
                let mut nonces = Vec::with_capacity(if work { input.len() } else { 0 });
                for (c, nonce) in input {
                    candidates.push(c.clone());
                    if work {
                        nonces.push(*nonce);
                    }
                }
                let ballot = Ballot {
                    weighting,
                    candidates,
                    nonces,
                    history: &history,
                };
                draw_weighted(&prev, 11, Rule::V1, ballot).unwrap().winner
            })
        });
        // The floor of any build in reused memory: the same table copied
        // from the proposals into a kept vector, nothing checked or drawn.
        if weighting == Weighting::Stake {
            let id = BenchmarkId::new("copy-floor", n);
            let mut kept: Vec<Candidate> = Vec::with_capacity(n);
            group.bench_with_input(id, &proposals, |b, input| {
                b.iter(|| {
                    kept.clear();
                    kept.extend(input.iter().map(|(c, _)| c.clone()));
                    kept.len()
                })
            });
        }
        // One roster for every round: pushed in order, drawn, its record's
        // tables taken back.
        let id = BenchmarkId::new(format!("roster/{}", weighting.name()), n);
        let mut roster = Roster::new();
        group.bench_with_input(id, &proposals, |b, input| {
            b.iter(|| {
                roster.extend(input.iter().cloned());
                let record = roster
                    .draw(&prev, 11, Rule::V1, weighting, &history)
                    .unwrap();
                let winner = record.winner;
                roster.recycle(record);
                winner
            })
        });
    }
    group.finish();
}

/// The three rules with their default parameters.
fn rules() -> [Weighting; 3] {
    [
        Weighting::Stake,
        Weighting::StakeAge { age_window: 10 },
        Weighting::StakeWork {
            work_bits: 20,
            work_bonus_max: 4,
        },
    ]
}

criterion_group!(benches, hashing, lottery, weighted, round_close);
criterion_main!(benches);
