//! The validator protocol end to end: the real posd binary, driven like `nc`.

use pos_testkit::{force_round, posd_bin, Client, Posd};
use std::net::Shutdown;
use std::time::{Duration, Instant};

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
    bad.send("72.5\n");
    let goodbye = bad.expect_closed();
    assert!(
        goodbye.contains("error: malformed block proposal: '72.5'"),
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
    for bad in ["201", "-1", "7x"] {
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
            "Validator address: {addr}\nresumed: balance 101 tokens, 1 block won"
        )),
        "{reply}"
    );
    // A second connection with the key takes over; the first is told and closed.
    let mut twin = posd.connect();
    twin.send(&format!("resume {key}\n"));
    twin.expect("resumed: balance 101 tokens");
    twin.expect("Enter a new BPM:");
    assert!(c.expect_closed().contains(&format!(
        "error: validator {addr} resumed on another connection; closing"
    )));
    let mut c = twin;

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

/// A daemon whose timer never fires, so rounds happen only when forced.
const FORCED: &[&str] = &["--round-interval", "1h"];

#[test]
fn commands_ignore_case_and_unknown_words_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--max-stake", "1000"]);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    c.send("HELP\n");
    assert!(c.expect("Enter token balance:").contains("resume <key>"));
    c.send("hello\n");
    assert_eq!(
        c.expect("Enter token balance:"),
        "error: unknown command 'hello': enter a whole number of tokens from 1 to 1000, \
         'resume <key>' or 'help'\nEnter token balance:"
    );
    c.send("7\n");
    let (address, key) = c.registration();
    for (command, reply) in [
        ("Help", "  chain [N]"),
        (
            "BALANCE",
            "balance: 7 tokens, blocks won: 0, status: active\n",
        ),
        ("Chain 1", r#"{"Index":0,"#),
        ("sTaTuS", "height: 0, round ends in: "),
    ] {
        c.send(&format!("{command}\n"));
        let got = c.expect("Enter a new BPM:");
        assert!(got.contains(reply), "{command}: {got:?}");
    }
    // Words that are no command: an error, no penalty.
    for word in ["hello", "Balanse", "?", "help?", "resume"] {
        c.send(&format!("{word}\n"));
        assert_eq!(
            c.expect("Enter a new BPM:"),
            format!("error: unknown command '{word}', type help\nEnter a new BPM:")
        );
    }
    c.send("balance now\n");
    assert_eq!(
        c.expect("Enter a new BPM:"),
        "error: 'balance' takes no argument, type help\nEnter a new BPM:"
    );
    c.send("balance\n");
    assert!(c.expect("Enter a new BPM:").contains("7 tokens"));
    // Resume and quit in capitals, at the stake prompt.
    drop(c);
    let mut r = posd.connect();
    r.send(&format!("Resume {}\n", key.to_uppercase()));
    assert!(r.expect("Enter a new BPM:").contains(&format!(
        "Validator address: {address}\nresumed: balance 7 tokens"
    )));
    r.send("QUIT\n");
    assert!(r.expect_closed().ends_with("bye\n"));
}

#[test]
fn malformed_proposals_still_slash() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--max-bpm", "200"]);
    for bad in [
        "72.5",
        "-1",
        "201",
        "72abc",
        "7 2",
        "seventy-two",
        ".5",
        "72,5",
    ] {
        let (mut v, address, _) = posd.validator(3);
        v.send(&format!("{bad}\n"));
        let goodbye = v.expect_closed();
        assert!(
            goodbye.contains(&format!("error: malformed block proposal: '{bad}'")),
            "{bad}: {goodbye}"
        );
        assert!(
            goodbye.contains(&format!(
                "validator {address} slashed: 3 tokens forfeited; closing"
            )),
            "{bad}: {goodbye}"
        );
    }
}

/// The seconds in "round ends in <secs>s".
fn round_ends_in(reply: &str) -> f64 {
    let secs = reply.split("round ends in ").nth(1).expect(reply);
    secs.split('s').next().unwrap().parse().expect(reply)
}

#[test]
fn each_proposal_is_confirmed_before_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), FORCED);
    let (mut v, address, _) = posd.validator(5);
    v.send("60\n");
    let first = v.expect("Enter a new BPM:");
    assert!(
        first.starts_with("proposal 60 for block 1; round ends in "),
        "{first}"
    );
    assert!(first.ends_with("s\nEnter a new BPM:"), "{first}");
    let left = round_ends_in(&first);
    assert!(left > 3000.0 && left <= 3600.0, "{first}");
    v.send("72\n");
    let second = v.expect("Enter a new BPM:");
    assert!(
        second.starts_with("proposal 72 for block 1 (replaces 60); round ends in "),
        "{second}"
    );
    force_round(&posd.socket());
    let (winner, block) = v.next_block();
    assert_eq!(
        (winner.as_str(), block["BPM"].as_u64()),
        (address.as_str(), Some(72))
    );
    v.expect("Enter a new BPM:");
    // A new round: nothing to replace.
    v.send("73\n");
    let third = v.expect("Enter a new BPM:");
    assert!(
        third.starts_with("proposal 73 for block 2; round ends in "),
        "{third}"
    );
}

#[test]
fn stake_timeout_counts_from_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), &["--stake-timeout", "1s"]);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    // Three timeouts long, a line every 200 ms: still served.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        c.send("help\n");
        c.expect("Enter token balance:");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.send("5\n");
    c.registration();
}

#[test]
fn resume_takes_over_a_live_session_and_keeps_its_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), FORCED);
    let (mut old, address, key) = posd.validator(10);
    old.send("72\n");
    old.expect("Enter a new BPM:");
    let mut new = posd.connect();
    new.expect("Enter token balance:");
    new.send(&format!("resume {key}\n"));
    let reply = new.expect("Enter a new BPM:");
    assert_eq!(
        reply,
        format!(
            "Validator address: {address}\nresumed: balance 10 tokens, 0 blocks won; \
             proposal 72 stands for block 1\nEnter a new BPM:"
        )
    );
    let goodbye = old.expect_closed();
    assert!(
        goodbye.ends_with(&format!(
            "error: validator {address} resumed on another connection; closing\n"
        )),
        "{goodbye}"
    );
    force_round(&posd.socket());
    let (winner, block) = new.next_block();
    assert_eq!(
        (winner.as_str(), block["BPM"].as_u64()),
        (address.as_str(), Some(72))
    );
    new.expect("Enter a new BPM:");
    new.send("balance\n");
    assert!(new
        .expect("Enter a new BPM:")
        .contains("balance: 11 tokens"));
}

#[test]
fn half_close_keeps_the_proposal_until_the_round_result() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(posd_bin!(), dir.path(), FORCED);
    // printf '100\n72\n' | nc -N: the write half closes right after the lines.
    let mut c = posd.connect();
    c.send("100\n72\n");
    c.stream.shutdown(Shutdown::Write).unwrap();
    let (address, _) = c.registration();
    c.expect("proposal 72 for block 1; round ends in ");
    c.expect("Enter a new BPM:");
    force_round(&posd.socket());
    let rest = c.expect_closed();
    assert!(
        rest.starts_with(&format!("\nwinning validator: {address}\n{{\"Index\":1,")),
        "{rest:?}"
    );
    assert!(rest.ends_with("}\n"), "{rest:?}");
    let block = rest.lines().nth(2).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(block).unwrap()["BPM"],
        72
    );

    // With nothing pending, a half-close ends the session at once (the round is an hour away).
    let mut idle = posd.connect();
    idle.send("5\n");
    idle.stream.shutdown(Shutdown::Write).unwrap();
    idle.registration();
    assert_eq!(idle.expect_closed(), "");
}

#[test]
fn line_limit_counts_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--max-line-bytes", "128", "--round-interval", "1h"],
    );
    let mut c = posd.connect();
    c.send(&format!("{:0>128}\r\n", 100));
    c.registration();
    let bpm = format!("{:0>128}", 72);
    c.send(&format!("{bpm}\n"));
    assert!(c
        .expect("Enter a new BPM:")
        .starts_with("proposal 72 for block 1;"));
    c.send(&format!("{bpm}\r\n"));
    assert!(c
        .expect("Enter a new BPM:")
        .starts_with("proposal 72 for block 1 (replaces 72);"));
    c.send(&format!("{}\r\n", "7".repeat(129)));
    assert!(c
        .expect_closed()
        .contains("error: line longer than 128 bytes; closing"));
    let mut d = posd.connect();
    d.send(&format!("{}\n", "1".repeat(129)));
    assert!(d
        .expect_closed()
        .contains("error: line longer than 128 bytes; closing"));
}
