//! The store against a real sled directory in a temp dir.

use pos_core::lottery::Candidate;
use pos_core::{Address, Block, Command, Digest, LedgerError, Refusal, Secret, Status};
use pos_store::{Store, StoreError};

const MAX: u64 = 1_000_000;

fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

fn register(store: &Store, n: u8, stake: u64) {
    register_address(store, addr(n), stake)
}

fn register_address(store: &Store, address: Address, stake: u64) {
    store
        .apply(&Command::Register {
            address,
            stake,
            max_stake: MAX,
            max_validators: MAX,
            at_ms: 10,
        })
        .unwrap()
        .unwrap();
}

/// The `CommitRound` where validator `n` (already registered) is the only candidate.
fn round_of(store: &Store, n: u8, bpm: u32) -> Command {
    let tip = store.tip().unwrap();
    let stake = store.validator(&addr(n)).unwrap().unwrap().balance;
    let candidates = vec![Candidate {
        address: addr(n),
        stake,
        bpm,
    }];
    let reveal = store.pending_secret().unwrap();
    let next = Secret(Digest::of(&tip.hash.0).0);
    Command::commit_round(&tip, candidates, reveal, next, tip.index + 100, 1).unwrap()
}

/// Commits one round where validator `n` (already registered) is the only candidate.
fn commit(store: &Store, n: u8, bpm: u32) -> Block {
    let cmd = round_of(store, n, bpm);
    store.apply(&cmd).unwrap().unwrap();
    let Command::CommitRound { block, .. } = cmd else {
        unreachable!("round_of makes rounds")
    };
    block
}

fn spec_at(genesis_ms: u64) -> pos_core::ChainSpec {
    pos_core::ChainSpec {
        genesis_ms,
        ..Default::default()
    }
}

#[test]
fn genesis_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), &spec_at(111))
        .unwrap()
        .tip()
        .unwrap();
    let again = Store::open(dir.path(), &spec_at(999))
        .unwrap()
        .tip()
        .unwrap();
    assert_eq!(first, again);
    assert_eq!((first.index, first.timestamp_ms), (0, 111));
}

#[test]
fn commands_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let block = {
        let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
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
    let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
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
    let store = Store::temporary(&pos_core::ChainSpec::default()).unwrap();
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
    let first = round_of(&store, 1, 60);
    store.apply(&first).unwrap().unwrap();
    let stale = store.tip().unwrap();
    let again = store.apply(&first);
    assert!(matches!(again, Ok(Err(Refusal::Round(_)))), "{again:?}");
    assert_eq!(store.tip().unwrap(), stale);
    assert_eq!(store.validator(&addr(1)).unwrap().unwrap().balance, 6);
    assert_eq!(store.counts().unwrap().active, 1);
}

#[test]
fn second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
    assert!(matches!(
        Store::open(dir.path(), &pos_core::ChainSpec::default()),
        Err(StoreError::Locked(..))
    ));
}

#[test]
fn foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = Store::open(dir.path(), &pos_core::ChainSpec::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("notes.txt"), "{err}");
}

/// A digest's hex digits as numbers.
fn nibbles(d: &Digest) -> Vec<u8> {
    d.0.iter().flat_map(|b| [b >> 4, b & 15]).collect()
}

/// What a prefix of `digits` hex digits asks the store for: whole bytes, odd digit.
fn split(digits: &[u8]) -> (Vec<u8>, Option<u8>) {
    let pairs = digits.chunks_exact(2);
    let odd = pairs.remainder().first().copied();
    (pairs.map(|p| p[0] << 4 | p[1]).collect(), odd)
}

/// A store prefix scan: whole bytes, odd digit, limit.
type Scan<'a> = dyn Fn(&[u8], Option<u8>, usize) -> Vec<Digest> + 'a;

#[test]
fn prefix_scans_select_what_a_look_at_every_key_would() {
    let store = Store::temporary(&pos_core::ChainSpec::default()).unwrap();
    // Addresses alike up to the 4th, 5th and 6th hex digit, and one at the top.
    let crafted = [
        [0xab, 0x12, 0x00],
        [0xab, 0x12, 0x10],
        [0xab, 0x12, 0x1f],
        [0xab, 0x13, 0x00],
        [0xff, 0xff, 0xff],
    ];
    let mut addresses = vec![];
    for head in crafted {
        let mut a = [0u8; 32];
        a[..3].copy_from_slice(&head);
        let address = Address(Digest(a));
        register_address(&store, address, 5);
        addresses.push(address.0);
    }
    register(&store, 1, 5);
    addresses.push(addr(1).0);
    addresses.sort();
    // Block hashes follow from fixed inputs: the same chain every run.
    let mut hashes = vec![store.tip().unwrap().hash];
    hashes.extend((0..200).map(|i| commit(&store, 1, 60 + i % 40).hash));
    hashes.sort();

    let check = |keys: &[Digest], find: &Scan| {
        for key in keys {
            for len in 4..=9 {
                let mut digits = nibbles(key)[..len].to_vec();
                for flip in [0, 1, 8] {
                    *digits.last_mut().unwrap() ^= flip;
                    let want: Vec<Digest> = keys
                        .iter()
                        .filter(|k| nibbles(k).starts_with(&digits))
                        .copied()
                        .collect();
                    let (bytes, nibble) = split(&digits);
                    for limit in [1, 2, 6] {
                        let got = find(&bytes, nibble, limit);
                        assert_eq!(got, want[..want.len().min(limit)], "{digits:x?}");
                    }
                }
            }
        }
    };
    check(&hashes, &|b, n, l| {
        store.hashes_with_prefix(b, n, l).unwrap()
    });
    check(&addresses, &|b, n, l| {
        let found = store.addresses_with_prefix(b, n, l).unwrap();
        found.into_iter().map(|a| a.0).collect()
    });
    // The crafted neighbours: 4 digits match three, the odd 5th tells them apart.
    let found = |b: &[u8], n| store.addresses_with_prefix(b, n, 6).unwrap().len();
    assert_eq!(found(&[0xab, 0x12], None), 3);
    assert_eq!(found(&[0xab, 0x12], Some(0)), 1);
    assert_eq!(found(&[0xab, 0x12], Some(1)), 2);
    assert_eq!(found(&[0xab, 0x12], Some(2)), 0);
    assert_eq!(found(&[0xff, 0xff], Some(0xf)), 1);
}

#[test]
fn a_chain_keeps_the_rules_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    let created = pos_core::ChainSpec {
        genesis_ms: 5,
        max_bpm: 500,
        block_reward: 3,
        weighting: pos_core::Weighting::StakeAge { age_window: 7 },
        ..Default::default()
    };
    drop(Store::open(dir.path(), &created).unwrap());
    let other = pos_core::ChainSpec {
        genesis_ms: 9,
        max_bpm: 2000,
        weighting: pos_core::Weighting::StakeWork {
            work_bits: 3,
            work_bonus_max: 1,
        },
        ..Default::default()
    };
    let store = Store::open(dir.path(), &other).unwrap();
    assert_eq!(store.chain_spec(), created);
    assert_eq!(store.tip().unwrap(), created.genesis());
}
