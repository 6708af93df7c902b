//! A durable round commit (posd's transaction over five trees + flush) next to
//! the storage limit: a raw sled two-tree transaction + flush, same disk, same run.
//! Then the close of a round that 10,000 validators proposed in: the
//! proposer's reads of every candidate alone, and the whole close (those
//! reads, the CommitRound's apply, which re-checks every candidate, and the
//! flush).
//!
//! cargo bench -p pos-store --bench commit

mod closing;

use criterion::{criterion_group, criterion_main, Criterion};
use pos_core::lottery::Candidate;
use pos_core::{Address, Command, Digest, Secret};
use pos_store::Store;
use sled::Transactional;

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group.sample_size(30);

    let dir = tempfile::tempdir_in(".").unwrap();
    let store = Store::open(&dir.path().join("posd"), &pos_core::ChainSpec::default()).unwrap();
    let winner = Address(Digest([7; 32]));
    store
        .apply(&Command::Register {
            address: winner,
            stake: 100,
            max_stake: u64::MAX,
            max_validators: u64::MAX,
            at_ms: 0,
        })
        .unwrap()
        .unwrap();
    store.flush().unwrap();
    group.bench_function("posd_round", |b| {
        b.iter(|| {
            let tip = store.tip().unwrap();
            let stake = store.validator(&winner).unwrap().unwrap().balance;
            let candidates = vec![Candidate {
                address: winner,
                stake,
                bpm: 72,
            }];
            let reveal = store.pending_secret().unwrap();
            let next = Secret(tip.hash.0);
            let cmd = Command::commit_round(&tip, candidates, reveal, next, tip.index, 1).unwrap();
            store.apply(&cmd).unwrap().expect("the round fits the tip");
            store.flush().unwrap();
        })
    });

    let db = sled::Config::new()
        .path(dir.path().join("raw"))
        .cache_capacity(32 * 1024 * 1024)
        .open()
        .unwrap();
    let (a, b_tree) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    let mut i = 0u64;
    let value = [0u8; 120];
    group.bench_function("raw_sled_2tree_txn_flush", |b| {
        b.iter(|| {
            i += 1;
            (&a, &b_tree)
                .transaction(|(a, b)| {
                    a.insert(&i.to_be_bytes(), &value[..])?;
                    b.insert(&i.to_be_bytes(), &value[..])?;
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .unwrap();
            db.flush().unwrap();
        })
    });
    group.finish();
}

/// Validators that all propose in every round.
const CANDIDATES: u64 = 10_000;

fn round_close(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_close_10k");
    group.sample_size(10);

    let dir = tempfile::tempdir_in(".").unwrap();
    let store = Store::open(&dir.path().join("posd"), &pos_core::ChainSpec::default()).unwrap();
    let addresses = closing::register(&store, CANDIDATES);
    group.bench_function("candidate_reads", |b| {
        b.iter(|| closing::candidates(&store, &addresses))
    });
    group.bench_function("close", |b| b.iter(|| closing::close(&store, &addresses)));
    group.finish();
}

criterion_group!(benches, commit, round_close);
criterion_main!(benches);
