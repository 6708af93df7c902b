//! Lottery v2 in the store: the pending secret, and how round records are
//! laid out and served. The migration from schema 1 is tested on a data
//! directory the schema-1 posd wrote, in crates/posd/tests/lottery.rs.

use pos_core::lottery::Candidate;
use pos_core::{Address, Command, Digest, Secret};
use pos_store::{Store, StoreError};
use std::os::unix::fs::PermissionsExt;

/// Registers the validator of these tests.
fn register(store: &Store) {
    let cmd = Command::Register {
        address: Address(Digest([1; 32])),
        stake: 10,
        max_stake: 100,
        max_validators: 100,
        at_ms: 1,
    };
    store.apply(&cmd).unwrap().unwrap();
}

/// Commits a round of that validator, handing on `next`; not yet flushed.
fn commit(store: &Store, next: Secret) {
    let tip = store.tip().unwrap();
    let candidates = vec![Candidate {
        address: Address(Digest([1; 32])),
        stake: store
            .validator(&Address(Digest([1; 32])))
            .unwrap()
            .unwrap()
            .balance,
        bpm: 70,
    }];
    let reveal = store.pending_secret().unwrap();
    let cmd =
        Command::commit_round(&tip, candidates, reveal, next, tip.timestamp_ms + 1, 1).unwrap();
    store.apply(&cmd).unwrap().unwrap();
}

#[test]
fn a_new_chain_starts_at_v2_with_a_private_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
    assert!(store.created() && !store.migrated());
    let anchor = store.lottery_anchor().unwrap();
    assert_eq!(anchor.from, 1);
    let first = store.pending_secret().unwrap();
    assert_eq!(first.commitment(), anchor.commitment);
    let mode = std::fs::metadata(dir.path().join("sled"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    drop(store);
    // A loosened directory is tightened again at the next start.
    let sled_dir = dir.path().join("sled");
    std::fs::set_permissions(&sled_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
    assert_eq!(store.pending_secret().unwrap(), first);
    let mode = std::fs::metadata(&sled_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    // Each fresh chain gets its own secret.
    let other = Store::temporary(&pos_core::ChainSpec::default())
        .unwrap()
        .pending_secret()
        .unwrap();
    assert_ne!(other, first);
}

#[test]
fn a_round_is_served_only_once_durable() {
    let store = Store::temporary(&pos_core::ChainSpec::default()).unwrap();
    register(&store);
    commit(&store, Secret([5; 32]));
    // Applied, not yet synced: its record (and so its reveal) is not served.
    assert_eq!(store.tip().unwrap().index, 1);
    assert_eq!(store.round(1).unwrap(), None);
    assert_eq!(store.rounds(1, 1).count(), 0);
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(1));
    store.flush().unwrap();
    assert!(store.round(1).unwrap().is_some());
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(2));
    assert_eq!(store.pending_secret().unwrap(), Secret([5; 32]));
}

#[test]
fn an_unknown_record_layout_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
        register(&store);
        commit(&store, Secret([6; 32]));
        store.flush().unwrap();
        assert_eq!(
            store.commitment_for(2).unwrap(),
            Some(Secret([6; 32]).commitment())
        );
    }
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let rounds = db.open_tree("rounds").unwrap();
        let mut v = rounds.get(1u64.to_be_bytes()).unwrap().unwrap().to_vec();
        assert_eq!(v[0], 2, "schema 2 records start with their layout version");
        v[0] = 9;
        rounds.insert(1u64.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
    let err = store.round(1).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("layout version Some(9)"), "{err}");
}
