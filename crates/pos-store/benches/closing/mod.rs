//! Rounds every registered validator proposes in, as posd's writer closes
//! them: shared by the benches that time them and that weigh what they
//! store, and by the round log's tests (`tests/round_log.rs`).

use pos_core::lottery::Candidate;
use pos_core::{Address, Command, Digest, Secret};
use pos_store::Store;

/// Registers `candidates` validators of stake 1,000 and flushes; their
/// addresses, in order.
pub fn register(store: &Store, candidates: u64) -> Vec<Address> {
    let mut addresses: Vec<Address> = (0..candidates)
        .map(|i| Address(Digest::of(&i.to_be_bytes())))
        .collect();
    addresses.sort_unstable();
    for &address in &addresses {
        let register = Command::Register {
            address,
            stake: 1_000,
            max_stake: u64::MAX,
            max_validators: u64::MAX,
            at_ms: 0,
        };
        store.apply(&register).unwrap().unwrap();
    }
    store.flush().unwrap();
    addresses
}

/// Each of `addresses` as a candidate, read as posd's proposer reads it.
pub fn candidates(store: &Store, addresses: &[Address]) -> Vec<Candidate> {
    let mut candidates = Vec::with_capacity(addresses.len());
    let mut asked = addresses.iter();
    store.validators_at(addresses.iter(), |v| {
        candidates.push(Candidate {
            address: *asked.next().unwrap(),
            stake: v.unwrap().balance,
            bpm: 72,
        })
    });
    candidates
}

/// The `CommitRound` of the next round among all of `addresses`.
pub fn round(store: &Store, addresses: &[Address]) -> Command {
    let tip = store.tip().unwrap();
    let table = candidates(store, addresses);
    let reveal = store.pending_secret().unwrap();
    let next = Secret(tip.hash.0);
    Command::commit_round(&tip, table, reveal, next, tip.index + 1, 1).unwrap()
}

/// Closes one round among all of `addresses`: their reads, the
/// `CommitRound`'s apply and the flush; the command it applied.
pub fn close(store: &Store, addresses: &[Address]) -> Command {
    let cmd = round(store, addresses);
    store.apply(&cmd).unwrap().expect("the round fits the tip");
    store.flush().unwrap();
    cmd
}
