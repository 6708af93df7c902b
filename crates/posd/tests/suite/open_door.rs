//! The open door (free registrations): bounded in count, in rate per source,
//! and in time for validators that never did anything.

use pos_proto::{Request, Response};
use pos_testkit::{admin, posd_bin, Client, Posd, PATIENCE};
use std::time::Instant;

/// Whether posd still stores `address` (asked as `posctl validator` does).
fn stored(posd: &Posd, address: &str) -> bool {
    match admin::ask(
        &posd.socket(),
        &Request::Validator(address.parse().unwrap()),
    ) {
        Ok(Response::Validators(v)) => !v.is_empty(),
        Ok(other) => panic!("unexpected answer {other:?}"),
        Err(e) if e.contains("no validator") => false,
        Err(e) => panic!("{e}"),
    }
}

/// A new connection offering `stake`: the client, still at the stake prompt,
/// and what posd said instead of registering.
fn refused_stake(posd: &Posd, stake: u64) -> (Client, String) {
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    c.send(&format!("{stake}\n"));
    let said = c.expect("Enter token balance:");
    (c, said)
}

#[test]
fn the_validator_limit_refuses_new_ones_but_not_resume() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--max-validators", "3"]);
    let mut first = Vec::new();
    for stake in 1..=3 {
        first.push(posd.validator(stake));
    }
    let (mut c, said) = refused_stake(&posd, 5);
    assert!(
        said.contains("error: validator limit reached (3 validators)"),
        "{said}"
    );
    // The connection stays usable, and a known validator comes back.
    let (old, address, key) = first.pop().unwrap();
    drop(old);
    c.send(&format!("resume {key}\n"));
    assert!(c.expect("Enter a new BPM:").contains(&address));
}

#[test]
fn registrations_per_source_are_rate_limited_with_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--registration-rate", "1"]);
    // A burst of ten seconds' worth goes through at once.
    let _burst: Vec<_> = (0..10).map(|_| posd.validator(1)).collect();
    let (mut c, said) = refused_stake(&posd, 1);
    assert!(
        said.contains("error: too many registrations from 127.0.0.1, try again in "),
        "{said}"
    );
    // Within about a second one more is allowed, on the same connection.
    let start = Instant::now();
    loop {
        c.send("1\n");
        let said = c.expect(":");
        if said.contains("Validator address:") {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "{said}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn idle_validators_are_forgotten_and_active_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--forget-after", "1s", "--round-interval", "1h"],
    );
    // Never proposed, gone: forgotten.
    let (idle, idle_addr, _) = posd.validator(5);
    drop(idle);
    // Proposed once, then gone: kept.
    let (mut proposer, proposer_addr, _) = posd.validator(6);
    proposer.propose(70);
    drop(proposer);
    // Never proposed, still connected: kept.
    let (_present, present_addr, _) = posd.validator(7);

    let start = Instant::now();
    while stored(&posd, &idle_addr) {
        assert!(start.elapsed() < PATIENCE, "never forgotten");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(stored(&posd, &proposer_addr));
    assert!(stored(&posd, &present_addr));
    posd.wait_log("idle validators forgotten");
    // The count follows: two active validators left.
    let Ok(Response::Status(status)) = admin::ask(&posd.socket(), &Request::Status) else {
        panic!("no status")
    };
    assert_eq!(status.validators_active, 2);
    Client::assert_serves(posd.addr);
}
