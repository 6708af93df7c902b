//! The real posctl binary against a real posd (its `run()` in-process) over
//! the admin socket, in both output modes.

mod common;

use common::{fails, json_lines, ok, posctl};
use pos_testkit::{Client, Daemon};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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
    // A count of one is singular: genesis alone is "1 block".
    let verified = ok(&s, &["chain", "verify"]);
    assert!(
        verified.starts_with("chain verified: 1 block;"),
        "{verified}"
    );

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
    let winner = &addr_a[..16];
    assert!(
        human.starts_with(&format!("block 2 committed: winner {winner}… (BPM 71)")),
        "{human}"
    );
    assert!(human.contains("out of 1 candidate\nhash "), "{human}");

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
    // Lottery v2: each round reveals what the round before committed to.
    assert_eq!(explain["lottery"], 2);
    let explain2 = json(&s, &["lottery", "explain", "2"]);
    assert_eq!(explain2["commitment"], explain["next_commitment"]);
    assert_ne!(explain2["reveal"], explain["reveal"]);
    let status = json(&s, &["status"]);
    assert_eq!(status["lottery_commitment"], explain2["next_commitment"]);
    let human = ok(&s, &["lottery", "explain", "2"]);
    assert!(human.contains("replayed     ok"), "{human}");
    assert!(human.contains("reveal       "), "{human}");

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
    let err = fails(&socket, &["status"], 3);
    assert!(err.contains(&socket.display().to_string()), "{err}");
    // Both ways posd may run: under systemd, or by hand in another directory.
    assert!(
        err.contains("Under systemd: systemctl status posd"),
        "{err}"
    );
    assert!(err.contains("Started by hand: "), "{err}");
    assert!(err.contains("--socket DATA_DIR/admin.sock"), "{err}");
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

/// Whether this test can act as other users (root and setpriv).
fn can_switch_users() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("setpriv").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: needs root and setpriv to act as another uid");
    }
    ok
}

/// posctl as uid/gid 65534 (nobody) with the supplementary `groups` ("" for none).
fn as_nobody(socket: &Path, groups: &str, args: &[&str]) -> Output {
    let groups = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!("--groups={groups}")
    };
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", &groups])
        .arg(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn other_users_are_refused_with_what_to_do() {
    if !can_switch_users() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = daemon(dir.path());
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // The file mode alone keeps a stranger out, and posctl says what to do...
    let out = as_nobody(&d.socket, "", &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("user nobody (uid 65534) is not allowed"),
        "{err}"
    );
    assert!(err.contains("sudo usermod -aG root nobody"), "{err}");
    assert!(!err.contains("Is posd running"), "{err}");
    // ...and were the socket opened up, posd's own check says the same.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&d.socket, "", &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("posctl: user nobody (uid 65534) is not allowed: "),
        "{err}"
    );
    assert!(
        err.contains("usermod -aG root nobody, then log in again"),
        "{err}"
    );
    // Root still gets answers.
    assert!(ok(&d.socket, &["status"]).contains("height"));
}

#[test]
fn members_of_posd_group_by_supplementary_group_get_in() {
    if !can_switch_users() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Opened up, so that posd's check decides, not the file mode.
    let d = daemon(dir.path());
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let ours = unsafe { libc::getegid() };
    // nobody by uid and primary group but in posd's group: a member posd
    // cannot look up by uid, as under PrivateUsers=yes.
    let out = as_nobody(&d.socket, &format!("65534,{ours}"), &["--json", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Many groups, posd's last: more than posd's first guess at the list's size.
    let many: Vec<String> = (1000..1100).map(|g| g.to_string()).collect();
    let out = as_nobody(
        &d.socket,
        &format!("{},{ours}", many.join(",")),
        &["status"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same groups without posd's: refused.
    let out = as_nobody(&d.socket, &many.join(","), &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not allowed"));
}

/// A Unix socket `fake.sock` in `dir` whose connections `serve` handles.
fn fake_socket(dir: &Path, serve: fn(UnixStream)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    path
}

/// Reads everything, answers nothing.
fn swallow(mut s: UnixStream) {
    let _ = std::io::copy(&mut s, &mut std::io::sink());
}

#[test]
fn a_silent_socket_times_out_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let silent = fake_socket(&dir.path().join("silent"), swallow);
    let start = Instant::now();
    let err = fails(&silent, &["--timeout", "1s", "status"], 3);
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert!(err.contains(&silent.display().to_string()), "{err}");
    // Well below the 10 s default: the flag is what counted.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    // A posd-like socket that shakes hands, then stalls the stream.
    let stalls = fake_socket(&dir.path().join("stalls"), |mut s| {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut hello = vec![0; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut hello).unwrap();
        let welcome = pos_proto::encode(&pos_proto::Welcome::Accepted {
            protocol: pos_proto::PROTOCOL_VERSION,
            server: "fake".into(),
        });
        let mut frame = (welcome.len() as u32).to_be_bytes().to_vec();
        frame.extend(welcome);
        s.write_all(&frame).unwrap();
        swallow(s);
    });
    let err = fails(&stalls, &["--timeout", "1500ms", "chain", "show"], 3);
    assert!(err.contains("did not answer within 1s 500ms"), "{err}");

    for bad in ["0s", "soon"] {
        fails(&silent, &["--timeout", bad, "status"], 2);
    }
}

#[test]
fn a_socket_that_is_not_posd_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    let echo = fake_socket(&dir.path().join("echo"), |mut s| {
        let mut back = s.try_clone().unwrap();
        let _ = std::io::copy(&mut s, &mut back);
    });
    let web = fake_socket(&dir.path().join("web"), |mut s| {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let junk = fake_socket(&dir.path().join("junk"), |mut s| {
        let _ = s.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]);
    });
    for socket in [echo, web, junk] {
        let err = fails(&socket, &["status"], 3);
        let want = format!("{} is not a posd admin socket", socket.display());
        assert!(err.contains(&want), "{err}");
        assert!(err.contains("--socket"), "{err}");
    }
}

#[test]
fn a_stale_socket_file_suggests_systemctl() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let err = fails(&socket, &["status"], 3);
    assert!(err.contains("systemctl status posd"), "{err}");
}

/// One of `candidates` that no block's hash in `chain` starts with.
fn no_hash_starts_with<'a>(chain: &[Value], candidates: [&'a str; 4]) -> &'a str {
    let taken = |p: &str| {
        chain
            .iter()
            .any(|b| b["Hash"].as_str().unwrap().starts_with(p))
    };
    candidates.into_iter().find(|p| !taken(p)).unwrap()
}

#[test]
fn unique_prefixes_stand_for_hashes_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    // Six validators alike in their first 4 hex digits, two of them in 5.
    let crafted = ["ab1200", "ab1210", "ab121f", "ab1230", "ab1240", "ab1250"]
        .map(|head| format!("{head}{}", "0".repeat(58)));
    {
        let store = pos_store::Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
        for address in &crafted {
            store
                .apply(&pos_core::Command::Register {
                    address: address.parse().unwrap(),
                    stake: 10,
                    max_stake: 1000,
                    max_validators: 1000,
                    at_ms: 1,
                })
                .unwrap()
                .unwrap();
        }
        store.flush().unwrap();
    }
    let d = daemon(dir.path());
    let (mut v, addr, _) = d.validator(10);
    v.send("70\n");
    v.expect("Enter a new BPM:");
    ok(&d.socket, &["lottery", "run"]);
    let chain = json_lines(&ok(&d.socket, &["--json", "chain", "show"]));
    let hash = chain[1]["Hash"].as_str().unwrap();

    // Unique: odd and even lengths, any case, with the ellipsis tables print.
    let pasted = format!("{}…", &hash[..16]);
    for prefix in [&hash[..7], &hash[..12], &hash[..8].to_uppercase(), &pasted] {
        assert_eq!(json(&d.socket, &["block", prefix]), chain[1], "{prefix}");
    }
    let found = json(&d.socket, &["validator", &addr[..9]]);
    assert_eq!(found["address"], addr.as_str());
    for (prefix, whole) in [
        ("ab120", &crafted[0]),
        ("AB1210", &crafted[1]),
        ("ab121f…", &crafted[2]),
    ] {
        let found = json(&d.socket, &["validator", prefix]);
        assert_eq!(found["address"], whole.as_str(), "{prefix}");
    }
    // Ambiguous: the first few matches, whole, and none picked.
    let err = fails(&d.socket, &["validator", "ab12"], 1);
    assert!(
        err.contains("ab12 matches more than one validator address"),
        "{err}"
    );
    for whole in &crafted[..5] {
        assert!(err.contains(&format!("\n  {whole}\n")), "{err}");
    }
    assert!(
        !err.contains(&crafted[5]) && err.ends_with("\n  ... and more\n"),
        "{err}"
    );
    let err = fails(&d.socket, &["validator", "ab121"], 1);
    assert!(!err.contains(&crafted[0]), "{err}");
    assert!(
        err.contains(&crafted[1]) && err.contains(&crafted[2]),
        "{err}"
    );
    assert!(!err.contains("and more"), "{err}");
    // No match: said plainly.
    let none = no_hash_starts_with(&chain, ["abcd", "bcde", "cdef", "defa"]);
    let err = fails(&d.socket, &["block", none], 1);
    assert!(
        err.contains(&format!("no block hash starts with {none}")),
        "{err}"
    );
    let err = fails(&d.socket, &["validator", "ab14"], 1);
    assert!(
        err.contains("no validator address starts with ab14"),
        "{err}"
    );
    // Too short or not hex: usage errors; posd is not asked.
    for args in [
        ["validator", "ab1"],
        ["validator", "ab1z"],
        ["block", "abc"],
        ["block", "xyz1"],
    ] {
        fails(&d.socket, &args, 2);
    }
    let err = fails(&d.socket, &["block", "ab1"], 2);
    assert!(err.contains("at least 4 hex digits"), "{err}");
    // Decimal digits are an index, and if no block has it, a hash prefix.
    assert_eq!(json(&d.socket, &["block", "0001"]), chain[1]);
    let digits = chain[1]["Hash"]
        .as_str()
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>();
    if digits.len() >= 4 {
        assert_eq!(json(&d.socket, &["block", &digits]), chain[1]);
    }
    let none = no_hash_starts_with(&chain, ["9999", "8888", "7777", "6666"]);
    let err = fails(&d.socket, &["block", none], 1);
    let want =
        format!("no block at index {none}; as a hash prefix: no block hash starts with {none}");
    assert!(err.contains(&want), "{err}");
}

#[test]
fn tables_fit_80_columns_unless_wide() {
    let base = tempfile::tempdir().unwrap();
    // A data dir whose path alone is wider than a status line has room for.
    let dir = base
        .path()
        .join("a-data-directory-with-a-rather-long-name-to-show-fitting");
    let d = daemon(&dir);
    let mut validators = vec![];
    for stake in [1_000_000_000_000, 300, 50] {
        let (mut v, addr, _) = d.validator(stake);
        v.send("72\n");
        v.expect("Enter a new BPM:");
        validators.push((v, addr));
    }
    let (mut slashed, _, _) = d.validator(7);
    slashed.send("72.5 beats per minute, give or take\n");
    slashed.expect_closed();
    ok(&d.socket, &["lottery", "run"]);
    let tip = json(&d.socket, &["status"])["tip_hash"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        &["validators", "--all"][..],
        &["status"],
        &["chain", "show"],
        &["lottery", "explain", "1"],
        &["lottery", "run"],
    ] {
        let text = ok(&d.socket, args);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{args:?}: {line:?}");
        }
    }
    let status = ok(&d.socket, &["status"]);
    assert!(status.contains(&format!("{}…", &tip[..16])), "{status}");
    assert!(!status.contains(&dir.display().to_string()), "{status}");
    // --wide: everything whole.
    let wide = ok(&d.socket, &["--wide", "status"]);
    assert!(wide.contains(&tip), "{wide}");
    assert!(wide.contains(&dir.display().to_string()), "{wide}");
    let shown = ok(&d.socket, &["validators"]);
    let all = ok(&d.socket, &["--wide", "validators"]);
    for (_, addr) in &validators {
        assert!(shown.contains(&format!("{}…", &addr[..16])), "{shown}");
        assert!(all.contains(addr.as_str()), "{all}");
    }
}

#[test]
fn completions_and_man_need_no_daemon() {
    let nowhere = Path::new("/nonexistent/admin.sock");
    for (shell, marker) in [
        ("bash", "_posctl"),
        ("zsh", "#compdef posctl"),
        ("fish", "complete -c posctl"),
    ] {
        let out = posctl(nowhere, &["completions", shell]);
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains(marker) && script.contains("lottery"),
            "{shell}"
        );
    }
    let out = posctl(nowhere, &["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH posctl 1"), "{page}");
    for command in [
        "posctl status",
        "posctl chain show",
        "posctl chain verify",
        "posctl block",
        "posctl validators",
        "posctl validator",
        "posctl lottery run",
        "posctl lottery explain",
        "posctl completions",
        "posctl man",
    ] {
        assert!(page.contains(&format!("\\fB{command}\\fR")), "{command}");
    }
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH FILES",
        ".SH EXAMPLES",
        ".SH ENVIRONMENT",
    ] {
        assert!(page.contains(section), "{section}");
    }
    for code in ["0", "1", "2", "3"] {
        let entry = format!(".TP\n\\fB{code}\\fR\n");
        assert!(page.contains(&entry), "exit code {code}");
    }
    assert!(page.contains("usermod"));
    // It sends nobody to a page that is not there: it names none of its own.
    assert!(!page.contains("posctl\\-"), "refers to a sub-page");
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

/// posd's HTTP API answers with exactly what `posctl --json` prints, for
/// every route that has a posctl twin, and with posctl's words for errors.
#[test]
fn http_api_serves_the_same_json_as_posctl() {
    use pos_testkit::http;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--round-interval", "1h", "--http-listen", "127.0.0.1:0"],
    );
    let (s, web) = (d.socket.clone(), d.http.expect("http is on"));
    let (mut a, addr_a, _) = d.validator(300);
    let (mut b, addr_b, _) = d.validator(100);
    for round in 0..3 {
        a.send(&format!("{}\n", 70 + round));
        a.expect("proposal");
        if round < 2 {
            b.send("80\n");
            b.expect("proposal");
        }
        ok(&s, &["lottery", "run"]);
    }
    b.send("72.5\n");
    b.expect_closed();

    let get = |path: &str| {
        let r = http::get(web, path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        r
    };
    let lines = |args: &[&str]| {
        let mut args = args.to_vec();
        args.insert(0, "--json");
        json_lines(&ok(&s, &args))
    };
    let chain = lines(&["chain", "show"]);
    let hash = chain[2]["Hash"].as_str().unwrap();
    let pairs: [(&[&str], &str); 12] = [
        (&["chain", "show"], "/api/blocks"),
        (
            &["chain", "show", "--from", "1", "--to", "2"],
            "/api/blocks?from=1&to=2",
        ),
        (&["chain", "show", "--last", "2"], "/api/blocks?last=2"),
        (&["chain", "show", "--from", "9"], "/api/blocks?from=9"),
        (&["block", "2"], "/api/blocks/2"),
        (&["block", hash], &format!("/api/blocks/{hash}")),
        (
            &["block", &hash[..8]],
            &format!("/api/blocks/{}", &hash[..8]),
        ),
        (&["validators"], "/api/validators"),
        (&["validators", "--all"], "/api/validators?status=all"),
        (
            &["validators", "--status", "slashed"],
            "/api/validators?status=slashed",
        ),
        (
            &["validator", &addr_b[..10]],
            &format!("/api/validators/{}", &addr_b[..10]),
        ),
        (&["lottery", "explain", "3"], "/api/rounds/3"),
    ];
    for (args, path) in pairs {
        let r = get(path);
        assert_eq!(r.json_lines(), lines(args), "posctl {args:?} vs GET {path}");
        // Lists (no thing named in the path) are JSON lines.
        let kind = match path.matches('/').count() {
            2 => "application/x-ndjson",
            _ => "application/json",
        };
        assert_eq!(r.header("content-type"), Some(kind), "{path}");
    }
    assert_eq!(
        get(&format!("/api/validators/{addr_a}")).json(),
        json(&s, &["validator", &addr_a])
    );

    // Status moves (uptime, the next round): the same keys, in the same
    // order, with the same values where nothing can change in between.
    let (web_status, cli_status) = (get("/api/status").json(), json(&s, &["status"]));
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&web_status), keys(&cli_status));
    for key in [
        "version",
        "pid",
        "height",
        "tip_hash",
        "listen",
        "data_dir",
        "validators_active",
    ] {
        assert_eq!(web_status[key], cli_status[key], "{key}");
    }

    // Refusals in posctl's words.
    for (args, path) in [
        (&["block", "9"][..], "/api/blocks/9"),
        (&["lottery", "explain", "0"], "/api/rounds/0"),
        (&["validator", "abcd"], "/api/validators/abcd"),
    ] {
        let r = http::get(web, path);
        assert_eq!(r.status, 404, "{path}");
        let why = r.json()["error"].as_str().unwrap().to_string();
        let said = fails(&s, args, 1);
        assert!(
            said.contains(&why),
            "posctl {args:?} said {said:?}, GET {path}: {why:?}"
        );
    }
}

/// `posctl cluster ...`: refused with a clear message on a standalone posd;
/// on a cluster node, SPEC §9's JSON keys, and `status` gains the node's role.
#[test]
fn cluster_commands_in_both_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let standalone = daemon(&dir.path().join("standalone"));
    let err = fails(&standalone.socket, &["cluster", "status"], 1);
    assert!(err.contains("this posd is standalone"), "{err}");
    let status = json(&standalone.socket, &["status"]);
    assert!(status.get("role").is_none(), "{status}");

    let secret = dir.path().join("secret");
    std::fs::write(&secret, "sixteen or more characters").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node = Daemon::start(
        &dir.path().join("node"),
        &[
            "--round-interval",
            "1h",
            "--node-id",
            "7",
            "--cluster-listen",
            "127.0.0.1:0",
            "--cluster-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    let before = json(&node.socket, &["cluster", "status"]);
    assert_eq!(before["role"], "uninitialized");
    assert_eq!(before["leader_id"], Value::Null);
    let after = json(&node.socket, &["cluster", "init"]);
    let keys: Vec<&str> = after
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "node_id",
            "role",
            "term",
            "leader_id",
            "committed",
            "applied",
            "members"
        ]
    );
    assert_eq!(after["node_id"], 7);
    assert_eq!(after["role"], "leader");
    assert_eq!(after["leader_id"], 7);
    assert_eq!(after["members"][0]["node_id"], 7);
    assert_eq!(after["members"][0]["voter"], true);
    let err = fails(&node.socket, &["cluster", "init"], 1);
    assert!(err.contains("already in a cluster"), "{err}");
    let text = ok(&node.socket, &["cluster", "status"]);
    assert!(
        text.contains("leader") && text.contains("node id"),
        "{text}"
    );
    let status = json(&node.socket, &["status"]);
    assert_eq!(
        (&status["node_id"], &status["role"], &status["leader_id"]),
        (&Value::from(7), &Value::from("leader"), &Value::from(7))
    );
    let err = fails(&node.socket, &["cluster", "remove", "9"], 1);
    assert!(err.contains("node 9 is not a member"), "{err}");
}

/// A `stake_work` daemon (work_bits 4, bonus up to 2 doublings) with two
/// validators of stake 10.
fn work_daemon(dir: &Path) -> (Daemon, [(Client, String); 2]) {
    let args = [
        &["--round-interval", "1h"][..],
        &pos_testkit::STAKE_WORK_4_2,
    ]
    .concat();
    let d = Daemon::start(dir, &args);
    let (a, addr_a, _) = d.validator(10);
    let (b, addr_b, _) = d.validator(10);
    (d, [(a, addr_a), (b, addr_b)])
}

/// The weight a nonce with `zeros` leading zero bits earns a stake of 10.
fn work_weight_of(zeros: u64) -> u64 {
    10 << zeros.saturating_sub(4).min(2)
}

#[test]
fn work_finds_nonces_posd_accepts_and_explain_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let (d, [(mut a, addr_a), (mut b, addr_b)]) = work_daemon(dir.path());
    let s = d.socket.clone();

    // --bits above the chain's: a weight above the stake.
    let found = json(&s, &["work", &addr_a, "72", "--bits", "6"]);
    assert_eq!(
        (found["index"].as_u64(), found["bpm"].as_u64()),
        (Some(1), Some(72))
    );
    let zeros_a = found["work_bits"].as_u64().unwrap();
    assert!(zeros_a >= 6, "{found}");
    let nonce_a = found["nonce"].as_str().unwrap().to_string();
    a.send(&format!("72 {nonce_a}\n"));
    a.expect(&format!(
        "proposal 72 for block 1, weight 40 (work_bits {zeros_a})"
    ));

    // No --bits: the chain's work_bits; the text names the line to send.
    let text = ok(&s, &["work", &addr_b, "73"]);
    let nonce_b = text.rsplit("propose with: 73 ").next().unwrap().trim();
    let zeros_b: u64 = text
        .split(" gives ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|z| z.parse().ok())
        .expect(&text);
    assert!(zeros_b >= 4, "{text}");
    assert!(
        text.starts_with(&format!(
            "nonce {nonce_b} gives {zeros_b} leading zero bits for block 1 ("
        )),
        "{text}"
    );
    b.send(&format!("73 {nonce_b}\n"));
    b.expect(&format!(
        "proposal 73 for block 1, weight {} (work_bits {zeros_b})",
        work_weight_of(zeros_b)
    ));

    assert_eq!(json(&s, &["lottery", "run"])["outcome"], "committed");
    let explained = json(&s, &["lottery", "explain", "1"]);
    assert_eq!(explained["weighting"], "stake_work");
    assert_eq!(explained["replay_ok"], true);
    let total = 40 + work_weight_of(zeros_b);
    assert_eq!(explained["total_weight"], total.to_string());
    assert_eq!(explained["total_stake"], "20");
    let mut by_address = std::collections::HashMap::new();
    for c in explained["candidates"].as_array().unwrap() {
        by_address.insert(c["address"].as_str().unwrap().to_string(), c.clone());
    }
    for (addr, weight, zeros, nonce) in [
        (&addr_a, 40, zeros_a, nonce_a.as_str()),
        (&addr_b, work_weight_of(zeros_b), zeros_b, nonce_b),
    ] {
        let c = &by_address[addr.as_str()];
        assert_eq!(c["weight"], weight.to_string(), "{c}");
        assert_eq!(c["work_bits"], zeros, "{c}");
        assert_eq!(c["nonce"], nonce, "{c}");
        assert!(c.get("age").is_none(), "{c}");
    }

    let human = ok(&s, &["lottery", "explain", "1"]);
    for needle in [
        "stake_work (work_bits 4, work_bonus_max 2)".to_string(),
        "(uniform in [0, total weight))".to_string(),
        "WEIGHT".to_string(),
        format!("work_bits {zeros_a}"),
        "replayed".to_string(),
    ] {
        assert!(human.contains(&needle), "{needle} not in\n{human}");
    }
    let total_line = human.lines().find(|l| l.starts_with("total weight"));
    assert!(
        total_line.is_some_and(|l| l.trim_end().ends_with(&format!(" {total}"))),
        "{human}"
    );
    assert!(human.lines().all(|l| l.chars().count() <= 80), "{human}");
}

/// On a long search `posctl work` rewrites one progress line on stderr:
/// hashes so far, the rate and the time to expect.
#[test]
fn work_reports_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (d, [(_a, addr_a), _]) = work_daemon(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["work", &addr_a, "72", "--bits", "48"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if seen.ends_with(b"   ") {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
    });
    // 2^18 hashes before the first update: seconds in a debug build.
    let progress = rx.recv_timeout(Duration::from_secs(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let progress = progress.expect("a progress line within 300 s");
    assert!(
        progress.starts_with("\rblock 1: 262144 hashes, ")
            && progress.contains("/s, 48 bits expect ~"),
        "{progress:?}"
    );
}

#[test]
fn explain_shows_ages_under_stake_age() {
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--round-interval", "1h"][..], &pos_testkit::STAKE_AGE_3].concat();
    let d = Daemon::start(dir.path(), &args);
    let s = d.socket.clone();
    let (mut a, _, _) = d.validator(10);
    let (mut b, _, _) = d.validator(10);
    a.propose(70);
    b.propose(71);
    let first = json(&s, &["lottery", "run"]);
    let winner = first["block"]["Validator"].as_str().unwrap().to_string();
    a.propose(72);
    b.propose(73);
    assert_eq!(json(&s, &["lottery", "run"])["outcome"], "committed");

    // Round 2: the loser of round 1 has age 1, the winner (stake 11) age 0.
    let explained = json(&s, &["lottery", "explain", "2"]);
    assert_eq!(explained["weighting"], "stake_age");
    assert_eq!(explained["replay_ok"], true);
    assert_eq!(explained["total_weight"], "31");
    for c in explained["candidates"].as_array().unwrap() {
        let (weight, age) = match c["address"] == winner.as_str() {
            true => ("11", 0),
            false => ("20", 1),
        };
        assert_eq!(
            (&c["weight"], &c["age"]),
            (&weight.into(), &age.into()),
            "{c}"
        );
        assert!(c.get("nonce").is_none(), "{c}");
    }
    let human = ok(&s, &["lottery", "explain", "2"]);
    for needle in [
        "stake_age (age_window 3)",
        "(uniform in [0, total weight))",
        "age 0",
        "age 1",
    ] {
        assert!(human.contains(needle), "{needle} not in\n{human}");
    }
    let total_line = human.lines().find(|l| l.starts_with("total weight"));
    assert!(
        total_line.is_some_and(|l| l.trim_end().ends_with(" 31")),
        "{human}"
    );
    assert!(human.lines().all(|l| l.chars().count() <= 80), "{human}");
}

/// `posctl backup` of a weighted chain: the copy keeps the rule and every
/// round's weights, nonces and ages, replays every draw, and goes on under
/// the same rule when posd starts from it (SPEC §12: "through backup").
#[test]
fn backup_keeps_every_weight_under_both_rules() {
    for rule in [&pos_testkit::STAKE_AGE_3[..], &pos_testkit::STAKE_WORK_4_2] {
        let root = tempfile::tempdir().unwrap();
        let mut args = vec!["--round-interval", "1h"];
        args.extend(rule);
        let live = Daemon::start(&root.path().join("live"), &args);
        let s = live.socket.clone();
        let mut clients: Vec<(Client, String)> = [10, 20, 30]
            .into_iter()
            .map(|stake| {
                let (c, addr, _) = live.validator(stake);
                (c, addr)
            })
            .collect();
        let rounds = 5;
        for _ in 0..rounds {
            for (i, (c, addr)) in clients.iter_mut().enumerate() {
                let bpm = (70 + i).to_string();
                let line = match rule[1] {
                    "stake_work" => {
                        let found = json(&s, &["work", addr, &bpm]);
                        format!("{bpm} {}", found["nonce"].as_str().unwrap())
                    }
                    _ => bpm.clone(),
                };
                c.send(&format!("{line}\n"));
                c.expect(&format!("proposal {bpm} for block"));
            }
            assert_eq!(json(&s, &["lottery", "run"])["outcome"], "committed");
        }
        let copy = root.path().join("copy");
        let said = json(&s, &["backup", copy.to_str().unwrap()]);
        assert_eq!(said["height"], rounds, "{said}");

        let restored = Daemon::start(&copy, &["--round-interval", "1h"]);
        let r = restored.socket.clone();
        let rules = |socket: &Path| {
            let status = json(socket, &["status"]);
            [
                "lottery_weighting",
                "age_window",
                "work_bits",
                "work_bonus_max",
            ]
            .map(|key| status[key].clone())
        };
        assert_eq!(rules(&r), rules(&s));
        assert_eq!(rules(&r)[0], rule[1]);
        let mut weighed_above_stake = false;
        for index in 1..=rounds {
            let at = index.to_string();
            let explained = json(&r, &["lottery", "explain", &at]);
            assert_eq!(explained, json(&s, &["lottery", "explain", &at]));
            assert_eq!(explained["replay_ok"], true, "{explained}");
            assert_eq!(explained["weighting"], rule[1], "{explained}");
            weighed_above_stake |= explained["total_weight"] != explained["total_stake"];
        }
        assert!(weighed_above_stake, "{rule:?}: every weight was the stake");
        assert_eq!(ok(&r, &["chain", "verify"]), ok(&s, &["chain", "verify"]));
    }
}
