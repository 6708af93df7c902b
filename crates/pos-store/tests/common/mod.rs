//! Building stores for the tests: validators and committed rounds.
#![allow(dead_code)] // Each test file uses some of these.

use pos_core::lottery::{draw, Candidate};
use pos_core::{Address, Block, Command, Digest};
use pos_store::Store;

pub const MAX: u64 = 1_000_000;

pub fn addr(n: u8) -> Address {
    Address(Digest([n; 32]))
}

pub fn register(store: &Store, n: u8, stake: u64) {
    register_address(store, addr(n), stake)
}

pub fn register_address(store: &Store, address: Address, stake: u64) {
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

/// Commits one round where validator `n` (already registered) is the only candidate.
pub fn commit(store: &Store, n: u8, bpm: u32) -> Block {
    commit_among(store, &[n], bpm)
}

/// Commits one round among validators `among` (registered), each proposing `bpm`.
pub fn commit_among(store: &Store, among: &[u8], bpm: u32) -> Block {
    let tip = store.tip().unwrap();
    let candidates = among
        .iter()
        .map(|&n| Candidate {
            address: addr(n),
            stake: store.validator(&addr(n)).unwrap().unwrap().balance,
            bpm,
        })
        .collect();
    let round = draw(&tip.hash, tip.index + 1, candidates).unwrap();
    let winner = round.winner().address;
    let block = Block::next(&tip, tip.timestamp_ms + 100, bpm, winner);
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
