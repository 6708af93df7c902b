//! The store against a real sled directory in a temp dir.

use pos_core::lottery::{draw, Candidate};
use pos_core::{Address, Block, Command, Digest, LedgerError, Refusal, Status};
use pos_store::{Store, StoreError};

const MAX: u64 = 1_000_000;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn register(store: &Store, n: u8, stake: u64) {
    store
        .apply(&Command::Register {
            address: addr(n),
            stake,
            max_stake: MAX,
            max_validators: MAX,
            at_ms: 10,
        })
        .unwrap()
        .unwrap();
}

/// Commits one round where validator `n` (already registered) is the only candidate.
fn commit(store: &Store, n: u8, bpm: u32) -> Block {
    let tip = store.tip().unwrap();
    let stake = store.validator(&addr(n)).unwrap().unwrap().balance;
    let round = draw(
        &tip.hash,
        tip.index + 1,
        vec![Candidate {
            address: addr(n),
            stake,
            bpm,
        }],
    )
    .unwrap();
    let block = Block::next(&tip, tip.index + 100, bpm, addr(n));
    store
        .apply(&Command::CommitRound {
            block: block.clone(),
            round,
            reward: 1,
        })
        .unwrap()
        .unwrap();
    block
}

#[test]
fn genesis_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), 111).unwrap().tip().unwrap();
    let again = Store::open(dir.path(), 999).unwrap().tip().unwrap();
    assert_eq!(first, again);
    assert_eq!((first.index, first.timestamp_ms), (0, 111));
}

#[test]
fn commands_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let block = {
        let store = Store::open(dir.path(), 1).unwrap();
        register(&store, 1, 50);
        register(&store, 2, 70);
        let block = commit(&store, 1, 72);
        store
            .apply(&Command::Slash {
                address: addr(2),
                reason: "bad bpm".into(),
                at_ms: 20,
            })
            .unwrap()
            .unwrap();
        store.flush().unwrap();
        block
    };
    let store = Store::open(dir.path(), 1).unwrap();
    assert_eq!(store.tip().unwrap(), block);
    assert_eq!(
        store.block_by_hash(&block.hash).unwrap(),
        Some(block.clone())
    );
    assert_eq!(store.round(1).unwrap().unwrap().winner().address, addr(1));
    let v1 = store.validator(&addr(1)).unwrap().unwrap();
    assert_eq!((v1.balance, v1.blocks_won), (51, 1));
    let v2 = store.validator(&addr(2)).unwrap().unwrap();
    assert_eq!((v2.balance, v2.status()), (0, Status::Slashed));
    let counts = store.counts().unwrap();
    assert_eq!((counts.active, counts.slashed), (1, 1));
    let all: Vec<_> = store.blocks(0, 10).map(|b| b.unwrap().index).collect();
    assert_eq!(all, vec![0, 1]);
}

#[test]
fn refused_commands_change_nothing() {
    let store = Store::temporary(1).unwrap();
    register(&store, 1, 5);
    let applied = store.applied().unwrap();
    let dup = store.apply(&Command::Register {
        address: addr(1),
        stake: 5,
        max_stake: MAX,
        max_validators: MAX,
        at_ms: 0,
    });
    assert!(matches!(
        dup,
        Ok(Err(Refusal::Ledger(LedgerError::AlreadyRegistered(_))))
    ));
    // Refused, yet counted: the applied index numbers every command.
    assert_eq!(store.applied().unwrap(), applied + 1);
    // A block that does not link to the tip (a stale round) is refused whole.
    let tip = store.tip().unwrap();
    let stale = commit(&store, 1, 60);
    let round = store.round(1).unwrap().unwrap();
    let again = store.apply(&Command::CommitRound {
        block: Block::next(&tip, 5, 60, addr(1)),
        round,
        reward: 1,
    });
    assert!(matches!(again, Ok(Err(Refusal::Round(_)))), "{again:?}");
    assert_eq!(store.tip().unwrap(), stale);
    assert_eq!(store.validator(&addr(1)).unwrap().unwrap().balance, 6);
    assert_eq!(store.counts().unwrap().active, 1);
}

#[test]
fn second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), 1).unwrap();
    assert!(matches!(
        Store::open(dir.path(), 1),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = Store::open(dir.path(), 1).err().unwrap();
    assert!(err.to_string().contains("notes.txt"), "{err}");
}
