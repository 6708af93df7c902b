//! Lottery v2 in the store: the schema-1 migration (on a data directory made
//! by the schema-1 posd, see fixtures/README.md), the pending secret, and how
//! round records are laid out and served.

use pos_core::lottery::{Candidate, Rule};
use pos_core::{Address, Command, Digest, Secret};
use pos_store::{Store, StoreError};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Facts about the fixture, as the schema-1 posd printed them.
const FIXTURE_TIP: &str = "25b7021507e4178fe58aeca00e0380f5456b4ba52b8258c9671dd8225ccadb44";
const FIXTURE_SEED_1: &str = "79807c37feedc27b57dd7078e5bb730c84b648e9b752f90e8448622916ee4187";
const FIXTURE_WINNER_3: &str = "fd165488dfe8c436507bd1d3ae831be6e49f10002c5bb2a296cf7f4e6df0a773";

/// Unpacks the schema-1 data directory into `dir`.
fn schema1(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema1.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "cannot unpack {}", fixture.display());
}

/// Raw values of a sled tree in `dir` (the store closed).
fn raw(dir: &Path, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = sled::open(dir.join("sled")).unwrap();
    let t = db.open_tree(tree).unwrap();
    t.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Commits a round of every active validator, handing on `next`.
fn commit(store: &Store, next: Secret) -> Command {
    let tip = store.tip().unwrap();
    let candidates = store
        .validators()
        .map(Result::unwrap)
        .filter(|v| v.slashed.is_none())
        .map(|v| Candidate {
            address: v.address,
            stake: v.balance,
            bpm: 70,
        })
        .collect();
    let reveal = store.pending_secret().unwrap();
    let cmd =
        Command::commit_round(&tip, candidates, reveal, next, tip.timestamp_ms + 1, 1).unwrap();
    store.apply(&cmd).unwrap().unwrap();
    store.flush().unwrap();
    cmd
}

#[test]
fn a_schema1_directory_is_migrated_in_place_and_verifies_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    schema1(dir.path());
    let v1_rounds = raw(dir.path(), "rounds");
    assert_eq!(v1_rounds.len(), 3);

    let store = Store::open(dir.path(), 1).unwrap();
    assert!(store.migrated() && !store.created());
    let anchor = store.lottery_anchor().unwrap();
    assert_eq!(anchor.from, 4);
    assert_eq!(store.next_commitment().unwrap(), anchor.commitment);
    assert_eq!(store.tip().unwrap().hash.to_hex(), FIXTURE_TIP);
    // The old rounds read as v1, as the old posd showed them.
    let r1 = store.round(1).unwrap().unwrap();
    assert_eq!(
        (r1.rule.clone(), r1.seed.to_hex()),
        (Rule::V1, FIXTURE_SEED_1.into())
    );
    let r3 = store.round(3).unwrap().unwrap();
    assert_eq!(r3.winner().address.to_string(), FIXTURE_WINNER_3);
    assert_eq!(store.commitment_for(3).unwrap(), None);
    assert_eq!(store.commitment_for(4).unwrap(), Some(anchor.commitment));
    let checked = store.check_all().unwrap();
    assert_eq!((checked.blocks, checked.validators), (4, 4));
    let mode = std::fs::metadata(dir.path().join("sled"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");

    // The first v2 round reveals the secret the migration committed to.
    let pending = store.pending_secret().unwrap();
    let next = Secret([42; 32]);
    commit(&store, next);
    let r4 = store.round(4).unwrap().unwrap();
    assert_eq!(
        r4.rule,
        Rule::V2 {
            reveal: pending,
            next_commitment: next.commitment()
        }
    );
    assert_eq!(store.commitment_for(5).unwrap(), Some(next.commitment()));
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(5));
    drop(store);

    // Reopened: nothing migrates twice, the secret handed on survived.
    let store = Store::open(dir.path(), 1).unwrap();
    assert!(!store.migrated());
    assert_eq!(store.lottery_anchor(), Some(anchor));
    assert_eq!(store.pending_secret().unwrap(), next);
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(5));
    drop(store);

    // Schema 1's records are untouched bytes; v2's carry their layout version.
    let rounds = raw(dir.path(), "rounds");
    assert_eq!(rounds[..3], v1_rounds[..]);
    assert_eq!(rounds[3].1[0], 2);
}

#[test]
fn a_new_chain_starts_at_v2_with_a_private_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1).unwrap();
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
    let store = Store::open(dir.path(), 1).unwrap();
    assert_eq!(store.pending_secret().unwrap(), first);
    let mode = std::fs::metadata(&sled_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    // Each fresh chain gets its own secret.
    let other = Store::temporary(1).unwrap().pending_secret().unwrap();
    assert_ne!(other, first);
}

#[test]
fn a_round_is_served_only_once_durable() {
    let store = Store::temporary(1).unwrap();
    store
        .apply(&Command::Register {
            address: Address(Digest([1; 32])),
            stake: 10,
            max_stake: 100,
            max_validators: 100,
            at_ms: 1,
        })
        .unwrap()
        .unwrap();
    let tip = store.tip().unwrap();
    let candidates = vec![Candidate {
        address: Address(Digest([1; 32])),
        stake: 10,
        bpm: 70,
    }];
    let reveal = store.pending_secret().unwrap();
    let cmd = Command::commit_round(&tip, candidates, reveal, Secret([5; 32]), 9, 1).unwrap();
    store.apply(&cmd).unwrap().unwrap();
    // Applied, not yet synced: its record (and so its reveal) is not served.
    assert_eq!(store.tip().unwrap().index, 1);
    assert_eq!(store.round(1).unwrap(), None);
    assert_eq!(store.rounds(1, 1).count(), 0);
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(1));
    store.flush().unwrap();
    assert!(store.round(1).unwrap().is_some());
    assert_eq!(store.verify_chain(|_, _| true).unwrap(), Some(2));
}

#[test]
fn an_unknown_record_layout_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1).unwrap();
        store
            .apply(&Command::Register {
                address: Address(Digest([1; 32])),
                stake: 10,
                max_stake: 100,
                max_validators: 100,
                at_ms: 1,
            })
            .unwrap()
            .unwrap();
        commit(&store, Secret([6; 32]));
    }
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let rounds = db.open_tree("rounds").unwrap();
        let mut v = rounds.get(1u64.to_be_bytes()).unwrap().unwrap().to_vec();
        v[0] = 3;
        rounds.insert(1u64.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path(), 1).unwrap();
    let err = store.round(1).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("layout version Some(3)"), "{err}");
}
