//! Chains weighted by stake_age and stake_work in the store: the rule kept
//! with the chain, weights and nonces stored and read back, every weight
//! re-checked when a round is applied, by `chain verify` and by import.

use pos_core::lottery::{Ballot, Candidate};
use pos_core::transition::Refusal;
use pos_core::weighting::Why;
use pos_core::{Address, ChainSpec, Command, Digest, RoundRecord, Secret, Weighting};
use pos_store::export::import;
use pos_store::Store;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn spec(weighting: Weighting) -> ChainSpec {
    ChainSpec {
        genesis_ms: 1_795_000_000_000,
        weighting,
        ..ChainSpec::default()
    }
}

/// A store at `dir` under `weighting` with validators 1..=4 (stakes 10..=40).
fn chain(dir: &std::path::Path, weighting: Weighting) -> Store {
    let store = Store::open(dir, &spec(weighting)).unwrap();
    for n in 1..=4u8 {
        let cmd = Command::Register {
            address: addr(n),
            stake: n as u64 * 10,
            max_stake: 1_000,
            max_validators: 100,
            at_ms: 1_795_000_000_001,
        };
        store.apply(&cmd).unwrap().unwrap();
    }
    store
}

/// The round among `among` (each with its nonce) on the store's tip, drawn
/// under the store's rule from its durable records.
fn round(store: &Store, among: &[(u8, Option<u64>)]) -> Command {
    let tip = store.tip().unwrap();
    let weighting = store.chain_spec().weighting;
    let from = tip.index.saturating_sub(weighting.history()).max(1);
    let history: Vec<RoundRecord> = store.rounds(from, tip.index).map(Result::unwrap).collect();
    let candidates = among
        .iter()
        .map(|&(n, _)| Candidate {
            address: addr(n),
            stake: store.validator(&addr(n)).unwrap().unwrap().balance,
            bpm: 60 + n as u32,
        })
        .collect();
    let ballot = Ballot {
        weighting,
        candidates,
        nonces: among.iter().map(|&(_, nonce)| nonce).collect(),
        history: &history,
    };
    let reveal = store.pending_secret().unwrap();
    let next = Secret(Digest::of(&tip.hash.0).0);
    Command::commit_weighted(&tip, ballot, reveal, next, tip.timestamp_ms + 1_000, 1).unwrap()
}

fn commit(store: &Store, cmd: &Command) {
    store.apply(cmd).unwrap().unwrap();
    store.flush().unwrap();
}

fn round_of(cmd: &Command) -> &RoundRecord {
    match cmd {
        Command::CommitRound { round, .. } => round,
        _ => unreachable!("a round"),
    }
}

#[test]
fn an_age_chain_stores_checks_and_carries_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let age = Weighting::StakeAge { age_window: 3 };
    let store = chain(dir.path(), age);
    for i in 0..12u8 {
        let among: Vec<_> = (1..=4u8)
            .filter(|n| n % 4 != i % 4)
            .map(|n| (n, None))
            .collect();
        commit(&store, &round(&store, &among));
    }
    let aged = store
        .rounds(1, 12)
        .map(Result::unwrap)
        .filter(|r| {
            r.weights
                .iter()
                .any(|w| matches!(w.why, Why::Age(a) if a > 0))
        })
        .count();
    assert!(aged > 0, "some candidate gained age");

    // The apply recomputes each weight: a raised one, or a round drawn by
    // stake on this chain, is refused and changes nothing.
    let good = round(&store, &[(1, None), (2, None)]);
    let mut raised = good.clone();
    if let Command::CommitRound { round, .. } = &mut raised {
        round.weights[0].weight += 1;
    }
    let tip = store.tip().unwrap();
    assert!(matches!(
        store.apply(&raised).unwrap(),
        Err(Refusal::Round(_))
    ));
    let candidates = round_of(&good).candidates.clone();
    let reveal = store.pending_secret().unwrap();
    let by_stake = Command::commit_round(&tip, candidates, reveal, reveal, tip.timestamp_ms + 1, 1);
    assert!(matches!(
        store.apply(&by_stake.unwrap()).unwrap(),
        Err(Refusal::Round(_))
    ));
    assert_eq!(store.tip().unwrap(), tip);
    commit(&store, &good);

    // Kept with the chain, verified, and through export and import.
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(14));
    let mut exported = Vec::new();
    store.export_to(&mut exported, None).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(exported.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        header["header"]["chain_spec"]["weighting"],
        serde_json::json!({"stake_age": {"age_window": 3}})
    );
    let rounds: Vec<_> = store.rounds(1, 13).map(Result::unwrap).collect();
    drop(store);
    let store = Store::open(dir.path(), &spec(Weighting::Stake)).unwrap();
    assert_eq!(store.chain_spec().weighting, age);
    let again: Vec<_> = store.rounds(1, 13).map(Result::unwrap).collect();
    assert_eq!(again, rounds);

    let target = tempfile::tempdir().unwrap().path().join("copy");
    import(exported.as_slice(), &target).unwrap();
    let copy = Store::open(&target, &spec(Weighting::Stake)).unwrap();
    assert_eq!(copy.chain_spec().weighting, age);
    assert_eq!(copy.check_all().unwrap().blocks, 14);

    // A tampered weight in the file is refused at its line.
    let text = String::from_utf8(exported).unwrap();
    let tampered = text.replacen("\"weight\":20,", "\"weight\":21,", 1);
    assert_ne!(tampered, text, "the export holds a weight of 20");
    let target = tempfile::tempdir().unwrap().path().join("bad");
    let err = import(tampered.as_bytes(), &target)
        .unwrap_err()
        .to_string();
    assert!(err.contains("weights") || err.contains("sha256"), "{err}");
}

#[test]
fn a_work_chain_keeps_each_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let work = Weighting::StakeWork {
        work_bits: 1,
        work_bonus_max: 3,
    };
    let store = chain(dir.path(), work);
    let cmd = round(&store, &[(1, Some(7)), (2, None), (3, Some(u64::MAX))]);
    commit(&store, &cmd);
    let stored = store.round(1).unwrap().unwrap();
    assert_eq!(&stored, round_of(&cmd));
    assert_eq!(stored.nonces(), vec![Some(7), None, Some(u64::MAX)]);
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(2));
}

#[test]
fn a_stake_chain_writes_its_records_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = chain(dir.path(), Weighting::Stake);
    let cmd = round(&store, &[(1, None), (2, None)]);
    commit(&store, &cmd);
    let stored = store.round(1).unwrap().unwrap();
    assert_eq!(
        (stored.weighting, stored.weights.len()),
        (Weighting::Stake, 0)
    );
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(2));
}

/// The records a draw reads are kept between reads (every proposal's
/// confirmation reads them) but follow the chain: each block appended is
/// seen at once.
#[test]
fn the_draw_history_kept_between_reads_follows_the_chain() {
    let weighting = Weighting::StakeAge { age_window: 3 };
    let dir = tempfile::tempdir().unwrap();
    let store = chain(dir.path(), weighting);
    for n in 0..6u8 {
        let next = store.tip().unwrap().index + 1;
        let from = next.saturating_sub(3).max(1);
        let fresh: Vec<RoundRecord> = store.rounds(from, next - 1).map(Result::unwrap).collect();
        let kept = store.history(next, &weighting).unwrap();
        assert_eq!(*kept, *fresh, "block {next}");
        assert_eq!(kept.len() as u64, next - from, "block {next}");
        let again = store.history(next, &weighting).unwrap();
        assert!(
            kept.is_empty() || std::sync::Arc::ptr_eq(&kept, &again),
            "read twice"
        );
        commit(
            &store,
            &round(&store, &[(1 + n % 4, None), (1 + (n + 1) % 4, None)]),
        );
    }
}
