//! The real posctl binary against a real posd (its `run()` in-process) over
//! the admin socket, in both output modes.

use pos_testkit::{Client, Daemon};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn posctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run posctl")
}

/// Runs posctl, expects exit 0, returns stdout.
fn ok(socket: &Path, args: &[&str]) -> String {
    let out = posctl(socket, args);
    assert!(
        out.status.success(),
        "posctl {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect()
}

fn json(socket: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.insert(0, "--json");
    let mut lines = json_lines(&ok(socket, &args));
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

/// A daemon whose timer never fires, so rounds happen only when forced.
fn daemon(dir: &Path) -> Daemon {
    Daemon::start(dir, &["--round-interval", "1h"])
}

#[test]
fn every_command_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let s = d.socket.clone();

    let none = json(&s, &["lottery", "run"]);
    assert_eq!(none, serde_json::json!({"outcome": "no_candidates"}));
    assert!(ok(&s, &["lottery", "run"]).starts_with("no candidates"));

    let (mut a, addr_a, _) = d.validator(300);
    let (mut b, addr_b, _) = d.validator(100);
    a.send("70\n");
    b.send("72.5\n");
    b.expect_closed();
    a.expect("slashed validator:");
    a.expect("Enter a new BPM:");

    let run = json(&s, &["lottery", "run"]);
    assert_eq!(run["outcome"], "committed");
    assert_eq!(run["candidates"], 1);
    assert_eq!(run["block"]["Validator"], addr_a.as_str());
    assert_eq!(run["block"]["BPM"], 70);
    let (winner, announced) = a.next_block();
    assert_eq!((winner, &announced), (addr_a.clone(), &run["block"]));
    a.send("71\n");
    a.expect("Enter a new BPM:");
    let human = ok(&s, &["lottery", "run"]);
    assert!(
        human.starts_with(&format!("block 2 committed: winner {addr_a} (BPM 71)")),
        "{human}"
    );

    let status = json(&s, &["status"]);
    for key in [
        "height",
        "tip_hash",
        "listen",
        "validators_active",
        "validators_slashed",
        "connected",
        "pending_proposals",
        "next_round_in_ms",
        "uptime_secs",
        "version",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["height"], 2);
    assert_eq!(
        (
            status["validators_active"].as_u64(),
            status["validators_slashed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(status["listen"], d.addr.to_string());
    assert!(ok(&s, &["status"]).contains("1 active, 1 slashed, 1 connected"));

    let chain = json_lines(&ok(&s, &["--json", "chain", "show"]));
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[1], run["block"]);
    let keys: Vec<_> = chain[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["Index", "Timestamp", "BPM", "Hash", "PrevHash", "Validator"]
    );
    assert_eq!(
        json_lines(&ok(&s, &["--json", "chain", "show", "--last", "1"]))[0]["Index"],
        2
    );
    assert_eq!(
        json_lines(&ok(
            &s,
            &["--json", "chain", "show", "--from", "1", "--to", "1"]
        )),
        vec![chain[1].clone()]
    );
    assert_eq!(
        ok(&s, &["chain", "show"]).lines().count(),
        4,
        "header + 3 rows"
    );

    let hash = chain[1]["Hash"].as_str().unwrap();
    assert_eq!(json(&s, &["block", hash]), chain[1]);
    assert_eq!(json(&s, &["block", "1"]), chain[1]);
    assert!(ok(&s, &["block", "1"]).contains(&format!("validator  {addr_a}")));

    let active = json_lines(&ok(&s, &["--json", "validators"]));
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["address"], addr_a.as_str());
    assert_eq!(
        (
            active[0]["balance"].as_u64(),
            active[0]["blocks_won"].as_u64()
        ),
        (Some(302), Some(2))
    );
    assert_eq!(active[0]["connected"], true);
    assert_eq!(
        json_lines(&ok(&s, &["--json", "validators", "--all"])).len(),
        2
    );
    let slashed = json(&s, &["validator", &addr_b]);
    assert_eq!(slashed["status"], "slashed");
    assert_eq!(slashed["balance"], 0);
    assert!(slashed["slash_reason"].as_str().unwrap().contains("'72.5'"));
    assert!(slashed.get("slashed_at").is_some() && slashed.get("registered_at").is_some());
    assert!(ok(&s, &["validators", "--all"]).contains("slashed"));
    // The filter the nc summary of a slashing flood points to.
    let only_slashed = json_lines(&ok(&s, &["--json", "validators", "--status", "slashed"]));
    assert_eq!(only_slashed.len(), 1);
    assert_eq!(only_slashed[0]["address"], addr_b.as_str());
    assert_eq!(
        json_lines(&ok(&s, &["--json", "validators", "--status", "active"])),
        active
    );

    let explain = json(&s, &["lottery", "explain", "1"]);
    assert_eq!(explain["replay_ok"], true);
    assert_eq!(explain["winner"], addr_a.as_str());
    assert_eq!(explain["total_stake"], "300");
    assert_eq!(explain["prev_hash"], chain[0]["Hash"]);
    assert!(ok(&s, &["lottery", "explain", "2"]).contains("replay       ok"));

    assert_eq!(
        json(&s, &["chain", "verify"]),
        serde_json::json!({"ok": true, "blocks": 3})
    );
    assert!(ok(&s, &["chain", "verify"]).starts_with("chain verified: 3 blocks"));

    // Failures that are posd's answer, not usage: exit 1 with the reason.
    for args in [
        &["block", "9"][..],
        &["lottery", "explain", "0"],
        &["validator", &"ab".repeat(32)],
    ] {
        let out = posctl(&s, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("posctl: "),
            "{args:?}"
        );
    }
}

#[test]
fn verify_names_a_block_altered_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = daemon(dir.path());
        let (mut a, _, _) = d.validator(10);
        for bpm in 60..63 {
            a.send(&format!("{bpm}\n"));
            a.expect("Enter a new BPM:");
            ok(&d.socket, &["lottery", "run"]);
            a.next_block();
        }
        d.stop().unwrap();
    }
    // Rewrite block 2's BPM behind posd's back, keeping its stored hash.
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let blocks = db.open_tree("blocks").unwrap();
        let key = 2u64.to_be_bytes();
        let cfg = bincode::config::standard();
        let (mut block, _): (pos_core::Block, _) =
            bincode::serde::decode_from_slice(&blocks.get(key).unwrap().unwrap(), cfg).unwrap();
        block.bpm += 1;
        blocks
            .insert(key, bincode::serde::encode_to_vec(&block, cfg).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let d = daemon(dir.path());
    let out = posctl(&d.socket, &["chain", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED: block 2: stored hash does not match"),
        "{text}"
    );
    let out = posctl(&d.socket, &["--json", "chain", "verify"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), out.status.code()),
        (Some(false), Some(1))
    );
}

#[test]
fn unreachable_posd_is_exit_3_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let out = posctl(&socket, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("systemctl status posd"), "{err}");
    // The environment variable is honoured too.
    let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .env("POSD_SOCKET", &socket)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn usage_errors_are_exit_2() {
    let nowhere = Path::new("/nonexistent/admin.sock");
    for args in [
        &[][..],
        &["frobnicate"],
        &["block", "tip"],
        &["validator", "not-an-address"],
        &["chain", "show", "--last", "-1"],
        &["lottery", "explain"],
    ] {
        assert_eq!(posctl(nowhere, args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn validators_see_forced_rounds_like_timed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let mut watcher: Client = d.connect();
    watcher.expect("Enter token balance:");
    let (mut v, addr, _) = d.validator(5);
    v.send("99\n");
    v.expect("Enter a new BPM:");
    ok(&d.socket, &["lottery", "run"]);
    assert_eq!(watcher.next_block().0, addr);
}

#[test]
fn other_users_are_refused() {
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: needs root and setpriv to act as another uid");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = daemon(dir.path());
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_posctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("status")
            .output()
            .unwrap()
    };
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // The file mode alone keeps a stranger out...
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    // ...and were the socket opened up, the peer-credential check still does.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied: uid 65534"), "{err}");
    // Root still gets answers.
    assert!(ok(&d.socket, &["status"]).contains("height"));
}

#[test]
fn completions_and_man_need_no_daemon() {
    let nowhere = Path::new("/nonexistent/admin.sock");
    let out = posctl(nowhere, &["completions", "zsh"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("lottery"));
    let out = posctl(nowhere, &["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH posctl"));
}

#[test]
fn hanging_up_withdraws_the_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let (mut v, _, _) = d.validator(5);
    v.send("99\nquit\n");
    v.expect_closed();
    assert_eq!(
        json(&d.socket, &["lottery", "run"])["outcome"],
        "no_candidates"
    );
    assert_eq!(json(&d.socket, &["status"])["pending_proposals"], 0);
}
