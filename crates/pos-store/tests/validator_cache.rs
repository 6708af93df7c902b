//! The store's validator cache against sled: every read through the cache
//! is what the validators tree holds, whatever was applied, refused,
//! aborted or restored in between.

use pos_core::lottery::Candidate;
use pos_core::transition::Change;
use pos_core::{Address, Command, Digest, LedgerError, Refusal, Secret, Status, Validator};
use pos_store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const MAX: u64 = 1_000_000;
/// The addresses the interleaving draws from: few, so commands collide.
const ADDRESSES: u8 = 12;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn spec() -> pos_core::ChainSpec {
    pos_core::ChainSpec {
        genesis_ms: 1_000,
        ..Default::default()
    }
}

fn register(n: u8, stake: u64, at_ms: u64) -> Command {
    Command::Register {
        address: addr(n),
        stake,
        max_stake: MAX,
        max_validators: MAX,
        at_ms,
    }
}

fn slash(n: u8, at_ms: u64) -> Command {
    Command::Slash {
        address: addr(n),
        reason: format!("bad proposal at {at_ms}"),
        at_ms,
    }
}

/// What sled's validators tree holds (read past the cache).
fn in_sled(store: &Store) -> BTreeMap<Address, Validator> {
    store
        .validators()
        .map(|v| v.unwrap())
        .map(|v| (v.address, v))
        .collect()
}

/// Every address reads through the cache as sled holds it; `why` names the step.
fn check(store: &Store, why: &str) {
    let sled = in_sled(store);
    for n in 0..ADDRESSES {
        assert_eq!(
            store.validator(&addr(n)).unwrap().as_ref(),
            sled.get(&addr(n)),
            "validator {n} after {why}"
        );
    }
}

/// Every address's read through the cache.
fn reads(store: &Store) -> Vec<Option<Validator>> {
    (0..ADDRESSES)
        .map(|n| store.validator(&addr(n)).unwrap())
        .collect()
}

/// The `CommitRound` among every active staked validator, as posd's
/// proposer reads them (`None` when there is none).
fn round(store: &Store, clock_ms: u64) -> Option<Command> {
    let candidates: Vec<Candidate> = (0..ADDRESSES)
        .filter_map(|n| store.validator(&addr(n)).unwrap())
        .filter(|v| v.status() == Status::Active && v.balance > 0)
        .map(|v| Candidate {
            address: v.address,
            stake: v.balance,
            bpm: 72,
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let tip = store.tip().unwrap();
    let reveal = store.pending_secret().unwrap();
    let next = Secret(Digest::of(&tip.hash.0).0);
    Some(Command::commit_round(&tip, candidates, reveal, next, clock_ms, 1).unwrap())
}

/// A command drawn by `rng` at `clock_ms`: registrations, slashes,
/// proposals and forgetting, on colliding addresses.
fn ledger_command(rng: &mut StdRng, clock_ms: u64) -> Command {
    let n = rng.gen_range(0..ADDRESSES);
    match rng.gen_range(0..4) {
        0 => register(n, rng.gen_range(1..100), clock_ms),
        1 => slash(n, clock_ms),
        2 => Command::Proposed {
            address: addr(n),
            at_ms: clock_ms,
        },
        _ => Command::Forget {
            addresses: vec![addr(n), addr(rng.gen_range(0..ADDRESSES))],
            registered_by_ms: clock_ms,
        },
    }
}

#[test]
fn every_read_is_what_sled_holds_through_interleaved_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &spec()).unwrap();
    let mut rng = StdRng::seed_from_u64(26);
    let mut last_round = None;
    let (mut rounds, mut batches, mut refused) = (0, 0, 0);
    for step in 0..400u64 {
        let clock_ms = 2_000 + step;
        match rng.gen_range(0..10) {
            0..=4 => {
                let outcome = store.apply(&ledger_command(&mut rng, clock_ms)).unwrap();
                refused += outcome.is_err() as u32;
            }
            5 | 6 => {
                if let Some(cmd) = round(&store, clock_ms) {
                    store.apply(&cmd).unwrap().expect("the round fits the tip");
                    last_round = Some(cmd);
                    rounds += 1;
                }
            }
            // A stale round, refused whole.
            7 => {
                if let Some(cmd) = &last_round {
                    assert!(matches!(store.apply(cmd).unwrap(), Err(Refusal::Round(_))));
                }
            }
            // Several commands in one transaction, as a Raft entry holds them.
            _ => {
                let mut entry: Vec<Command> = (0..rng.gen_range(2..6))
                    .map(|_| ledger_command(&mut rng, clock_ms))
                    .collect();
                entry.extend(round(&store, clock_ms));
                let entry: Vec<&Command> = entry.iter().collect();
                store.apply_entry(&entry, b"position").unwrap();
                batches += 1;
            }
        }
        if step % 50 == 0 {
            store.flush().unwrap();
        }
        check(&store, &format!("step {step}"));
    }
    assert!(
        rounds > 20 && batches > 20 && refused > 20,
        "{rounds} rounds, {batches} entries, {refused} refusals"
    );
    assert!(!in_sled(&store).is_empty());
    store.flush().unwrap();
    store.check_all().unwrap();
    let before = reads(&store);
    drop(store);
    let reopened = Store::open(dir.path(), &spec()).unwrap();
    assert_eq!(reads(&reopened), before);
    check(&reopened, "reopening");
}

#[test]
fn a_transaction_reads_its_own_writes() {
    let store = Store::temporary(&spec()).unwrap();
    let outcomes = store
        .apply_entry(
            &[
                &register(1, 50, 2_000),
                &slash(1, 2_001),
                &register(2, 40, 2_000),
                &Command::Forget {
                    addresses: vec![addr(2)],
                    registered_by_ms: 2_000,
                },
                &register(2, 30, 2_002),
            ],
            b"position",
        )
        .unwrap();
    let Ok(Change::Validator(slashed)) = &outcomes[1] else {
        panic!("the slash did not see the registration: {outcomes:?}");
    };
    assert_eq!((slashed.status(), slashed.balance), (Status::Slashed, 0));
    assert_eq!(outcomes[3], Ok(Change::Forgotten(vec![addr(2)])));
    // Registered again once forgotten: the third write of the same address.
    let Ok(Change::Validator(again)) = &outcomes[4] else {
        panic!("the second registration did not see the forgetting: {outcomes:?}");
    };
    assert_eq!(again.balance, 30);
    assert_eq!(store.validator(&addr(1)).unwrap().as_ref(), Some(slashed));
    assert_eq!(store.validator(&addr(2)).unwrap().as_ref(), Some(again));
    check(&store, "the entry");
    let counts = store.counts().unwrap();
    assert_eq!((counts.active, counts.slashed), (1, 1));
}

#[test]
fn refused_and_aborted_commands_leave_the_cache_as_it_was() {
    let store = Store::temporary(&spec()).unwrap();
    store.apply(&register(1, 50, 2_000)).unwrap().unwrap();
    store.apply(&slash(1, 2_001)).unwrap().unwrap();
    store.apply(&register(2, 40, 2_000)).unwrap().unwrap();
    let before = reads(&store);
    let refused = [
        register(2, 10, 2_002),
        slash(1, 2_003),
        slash(3, 2_003),
        Command::Proposed {
            address: addr(4),
            at_ms: 2_003,
        },
    ];
    for cmd in &refused {
        assert!(store.apply(cmd).unwrap().is_err(), "{cmd:?}");
    }
    // A round naming a candidate whose stake is not its balance.
    let mut cmd = round(&store, 2_004).unwrap();
    if let Command::CommitRound { round, .. } = &mut cmd {
        round.candidates[0].stake += 1;
    }
    assert!(store.apply(&cmd).unwrap().is_err());
    assert_eq!(reads(&store), before);
    check(&store, "refusals");

    // A store failing mid-entry (a round on a store that has no chain yet)
    // aborts the whole transaction, registration included.
    let awaiting = Store::temporary_awaiting(&spec()).unwrap();
    let err = awaiting
        .apply_entry(
            &[&register(5, 50, 2_000), &round(&store, 2_004).unwrap()],
            b"position",
        )
        .unwrap_err();
    assert!(err.to_string().contains("no tip"), "{err}");
    assert_eq!(awaiting.validator(&addr(5)).unwrap(), None);
    check(&awaiting, "an aborted entry");
    assert_eq!(
        awaiting.apply(&slash(5, 2_001)).unwrap(),
        Err(LedgerError::Unknown(addr(5)).into())
    );
}

#[test]
fn a_restore_or_an_import_serves_the_new_validators() {
    let source = Store::temporary(&spec()).unwrap();
    for n in 1..5 {
        source
            .apply(&register(n, 10 * n as u64, 2_000))
            .unwrap()
            .unwrap();
    }
    source.apply(&slash(2, 2_001)).unwrap().unwrap();
    let cmd = round(&source, 2_002).unwrap();
    source.apply(&cmd).unwrap().unwrap();
    let mut bytes = Vec::new();
    source.export_to(&mut bytes, None).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let target = Store::open(dir.path(), &spec()).unwrap();
    for n in 3..8 {
        target.apply(&register(n, 7, 2_000)).unwrap().unwrap();
    }
    target.flush().unwrap();
    target.restore_from(bytes.as_slice()).unwrap();
    assert_eq!(reads(&target), reads(&source));
    check(&target, "the restore");
    // The restored store applies on top of what it restored.
    let cmd = round(&target, 2_003).unwrap();
    target
        .apply(&cmd)
        .unwrap()
        .expect("the round fits the restored tip");
    check(&target, "a round after the restore");

    let imported = tempfile::tempdir().unwrap();
    let path = imported.path().join("posd");
    pos_store::export::import(bytes.as_slice(), &path).unwrap();
    let opened = Store::open(&path, &spec()).unwrap();
    assert_eq!(reads(&opened), reads(&source));
}

#[test]
fn reads_together_are_reads_one_by_one() {
    let store = Store::temporary(&spec()).unwrap();
    let address = |i: u16| Address(Digest::of(&i.to_be_bytes()));
    for i in 0..400 {
        let register = Command::Register {
            address: address(i),
            stake: 1 + u64::from(i),
            max_stake: MAX,
            max_validators: MAX,
            at_ms: 2_000,
        };
        store.apply(&register).unwrap().unwrap();
    }
    for i in (0..400).step_by(7) {
        let slash = Command::Slash {
            address: address(i),
            reason: "test".into(),
            at_ms: 2_001,
        };
        store.apply(&slash).unwrap().unwrap();
    }
    let mut rng = StdRng::seed_from_u64(26);
    for case in 0..300 {
        // Registered or not (i ≥ 400), few or most of them, in address
        // order or not, with repeats or not: a round's candidates and worse.
        let take = [1, 3, 40, 200, 390, 500][case % 6];
        let mut asked: Vec<Address> = (0..take).map(|_| address(rng.gen_range(0..450))).collect();
        if case % 3 != 0 {
            asked.sort_unstable();
        }
        if case % 3 == 1 {
            asked.dedup();
        }
        let one_by_one: Vec<_> = asked.iter().map(|a| store.validator(a).unwrap()).collect();
        let mut together = Vec::new();
        store.validators_at(asked.iter(), |v| together.push(v.cloned()));
        assert_eq!(together, one_by_one, "case {case}");
    }
}
