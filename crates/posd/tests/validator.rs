//! The validator protocol end to end: the real posd binary, driven like `nc`.

use pos_testkit::{posd_bin, Client, Posd};

const FAST: &[&str] = &["--round-interval", "200ms"];

#[test]
fn registered_proposer_wins_and_every_client_sees_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), FAST);
    let mut watcher = posd.connect();
    let greeting = watcher.expect("Enter token balance:");
    assert_eq!(
        greeting,
        "posd 0.1.0: stake tokens to become a validator, or 'help'\nEnter token balance:"
    );
    let (mut a, addr_a, key_a) = posd.validator(100);
    let (mut b, _addr_b, _) = posd.validator(50);
    assert_eq!(addr_a.len(), 64);
    assert_eq!(key_a.len(), 64);
    a.send("72\n");
    for client in [&mut watcher, &mut a, &mut b] {
        let (winner, block) = client.next_block();
        assert_eq!(winner, addr_a);
        assert_eq!(block["Validator"], addr_a.as_str());
        assert_eq!(block["BPM"], 72);
        assert_eq!(block["Index"], 1);
        assert_eq!(block["Hash"].as_str().unwrap().len(), 64);
    }
    // The announcement ends with the prompt again, so nc users know where they are.
    a.expect("Enter a new BPM:");
    a.send("balance\n");
    assert_eq!(
        a.expect("Enter a new BPM:"),
        "balance: 101 tokens, blocks won: 1, status: active\nEnter a new BPM:"
    );
}

#[test]
fn pipelined_stake_and_bpm_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), FAST);
    let mut c = posd.connect();
    c.send("100\n72\n");
    let (address, _) = c.registration();
    let (winner, block) = c.next_block();
    assert_eq!(
        (winner.as_str(), block["BPM"].as_u64()),
        (address.as_str(), Some(72))
    );
}

#[test]
fn bad_stakes_get_an_error_and_the_prompt_again() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--max-stake", "1000"]);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    for bad in [
        "0",
        "-5",
        "1001",
        "99999999999999999999999999",
        "abc",
        "1.5",
        "resume",
    ] {
        c.send(&format!("{bad}\n"));
        let reply = c.expect("Enter token balance:");
        assert!(reply.starts_with("error: "), "{bad}: {reply:?}");
        assert!(
            reply.contains("from 1 to 1000") || reply.contains("key"),
            "{bad}: {reply:?}"
        );
    }
    c.send_bytes(b"\xff\xfe\n1\x002\n");
    assert!(c
        .expect("Enter token balance:")
        .contains("error: line is not valid UTF-8"));
    assert!(c
        .expect("Enter token balance:")
        .contains("error: line contains a NUL byte"));
    c.send("1000\n");
    c.registration();
}

#[test]
fn malformed_proposal_slashes_durably_and_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let mut posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let (mut watcher, watcher_addr, _) = posd.validator(5);
    let (mut bad, bad_addr, bad_key) = posd.validator(40);
    bad.send("seventy\n");
    let goodbye = bad.expect_closed();
    assert!(
        goodbye.contains("error: malformed block proposal: 'seventy'"),
        "{goodbye}"
    );
    assert!(goodbye.contains(&format!(
        "validator {bad_addr} slashed: 40 tokens forfeited"
    )));
    let seen = watcher.expect("Enter a new BPM:");
    assert!(
        seen.contains(&format!("slashed validator: {bad_addr}")),
        "{seen}"
    );
    assert_ne!(watcher_addr, bad_addr);

    assert!(posd.terminate().success());
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut c = posd.connect();
    c.send(&format!("resume {bad_key}\n"));
    let reply = c.expect("Enter token balance:");
    let reply = c.expect("Enter token balance:").to_string() + &reply;
    assert!(
        reply.contains(&format!(
            "error: validator {bad_addr} was slashed: malformed"
        )),
        "{reply}"
    );
}

#[test]
fn invalid_bpm_only_errors_when_slashing_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--slash-on-invalid-bpm", "false", "--max-bpm", "200"],
    );
    let (mut c, _, _) = posd.validator(5);
    for bad in ["201", "-1", "x"] {
        c.send(&format!("{bad}\n"));
        let reply = c.expect("Enter a new BPM:");
        assert!(reply.starts_with("error: "), "{reply}");
        assert!(reply.contains("from 0 to 200"), "{reply}");
    }
    c.send("balance\n");
    assert!(c.expect("Enter a new BPM:").contains("status: active"));
}

#[test]
fn restart_keeps_chain_and_balances_and_resume_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut posd = Posd::start(posd_bin!(), dir.path(), FAST);
    let (mut a, addr, key) = posd.validator(100);
    a.send("80\n");
    let (_, block) = a.next_block();
    drop(a);
    assert!(posd.terminate().success());

    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut c = posd.connect();
    c.send(&format!("resume {key}\n"));
    let reply = c.expect("Enter a new BPM:");
    assert!(
        reply.contains(&format!(
            "Validator address: {addr}\nresumed: balance 101 tokens, 1 blocks won"
        )),
        "{reply}"
    );
    // A second live connection for the same validator is refused.
    let mut twin = posd.connect();
    twin.send(&format!("resume {key}\n"));
    let reply = twin.expect("Enter token balance:");
    let reply = twin.expect("Enter token balance:").to_string() + &reply;
    assert!(reply.contains("is already connected"), "{reply}");

    c.send("chain 1\n");
    let line = c.expect("Enter a new BPM:");
    let stored: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(stored, block);
    c.send("status\n");
    let status = c.expect("Enter a new BPM:");
    assert!(status.starts_with("height: 1, round ends in: "), "{status}");
    assert!(
        status.contains("validators: 1 active, 0 slashed"),
        "{status}"
    );
}

#[test]
fn commands_at_the_bpm_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let (mut c, _, _) = posd.validator(7);
    c.send("help\n");
    let help = c.expect("Enter a new BPM:");
    for word in ["balance", "chain [N]", "status", "quit"] {
        assert!(help.contains(word), "{help}");
    }
    c.send("chain\n");
    let genesis = c.expect("Enter a new BPM:");
    assert!(genesis.starts_with(r#"{"Index":0,"#), "{genesis}");
    assert!(
        genesis.contains(r#""PrevHash":"","Validator":"""#),
        "{genesis}"
    );
    c.send("chain 0\n");
    assert!(c
        .expect("Enter a new BPM:")
        .starts_with("error: chain takes a count from 1 to 100"));
    c.send("status\n");
    assert!(c.expect("Enter a new BPM:").contains("candidates: 0"));
    c.send("5\nstatus\n");
    c.expect("Enter a new BPM:");
    assert!(c.expect("Enter a new BPM:").contains("candidates: 1"));
}

#[test]
fn limits_give_an_error_before_the_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &[
            "--max-line-bytes",
            "128",
            "--max-connections",
            "2",
            "--stake-timeout",
            "300ms",
        ],
    );
    let mut long = posd.connect();
    long.send(&"9".repeat(200));
    assert!(long
        .expect_closed()
        .contains("error: line longer than 128 bytes; closing"));

    // Two validators fill the limit: nobody can be shed to make room.
    let (mut first, _, first_key) = posd.validator(3);
    let (_second, _, _) = posd.validator(3);
    let mut third = posd.connect();
    assert_eq!(
        third.expect_closed(),
        "error: too many connections (limit 2); try again later\n"
    );
    // A silent client is let go after the stake timeout.
    first.send("quit\n");
    first.expect_closed();
    let mut silent = posd.connect();
    assert!(silent
        .expect_closed()
        .contains("error: no stake within 0.3s; closing"));
    // The smallest line limit still fits a resume, even with nc's \r.
    let mut back = posd.connect();
    back.expect("Enter token balance:");
    back.send(&format!("resume {first_key}\r\n"));
    back.expect("resumed: balance 3 tokens");
}

#[test]
fn quit_says_bye() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let mut c: Client = posd.connect();
    c.send("help\nquit\n");
    let out = c.expect_closed();
    assert!(out.contains("resume <key>"), "{out}");
    assert!(out.ends_with("bye\n"), "{out}");
}
