//! Config precedence, bad keys and values, `--print-config`, SIGHUP reload.

use pos_testkit::{posd_bin, Posd};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `posd args...` with exactly these POSD_* variables.
fn posd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(posd_bin!());
    for (key, _) in std::env::vars() {
        if key.starts_with("POSD_") || key == "STATE_DIRECTORY" || key == "RUNTIME_DIRECTORY" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = posd(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("posd.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = posd(args, env);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "round_interval = \"10s\"\nmax_bpm = 500\nblock_reward = 3\nslash_on_invalid_bpm = false\n",
    );
    let env = [("POSD_ROUND_INTERVAL", "20s"), ("POSD_MAX_BPM", "600")];
    let c = print_config(&["--config", &file, "--round-interval", "5m"], &env);
    assert_eq!(c["round_interval"].as_str(), Some("5m"));
    assert_eq!(c["max_bpm"].as_integer(), Some(600));
    assert_eq!(c["block_reward"].as_integer(), Some(3));
    assert_eq!(c["slash_on_invalid_bpm"].as_bool(), Some(false));
    assert_eq!(c["max_stake"].as_integer(), Some(1_000_000_000_000));
    assert_eq!(c["listen"].as_str(), Some("127.0.0.1:9000"));
}

#[test]
fn defaults_follow_systemd_directories() {
    let c = print_config(&[], &[]);
    assert_eq!(c["data_dir"].as_str(), Some("./posd-data"));
    assert_eq!(c["admin_socket"].as_str(), Some("./posd-data/admin.sock"));
    let c = print_config(
        &[],
        &[
            ("STATE_DIRECTORY", "/var/lib/posd"),
            ("RUNTIME_DIRECTORY", "/run/posd:/run/other"),
        ],
    );
    assert_eq!(c["data_dir"].as_str(), Some("/var/lib/posd"));
    assert_eq!(c["admin_socket"].as_str(), Some("/run/posd/admin.sock"));
}

#[test]
fn printed_config_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let first = posd(
        &[
            "--print-config",
            "--round-interval",
            "1m 30s",
            "--log-format",
            "json",
        ],
        &[],
    );
    let file = write(
        dir.path(),
        &String::from_utf8(first.stdout.clone()).unwrap(),
    );
    let again = posd(&["--print-config", "--config", &file], &[]);
    assert_eq!(first.stdout, again.stdout);
}

#[test]
fn unknown_keys_and_bad_values_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "round_intervall = \"5s\"\n");
    let err = fails(&["--config", &file], &[]);
    assert!(
        err.contains("unknown key `round_intervall`") && err.contains(&file),
        "{err}"
    );

    let file = write(dir.path(), "round_interval = \"soon\"\n");
    let err = fails(&["--config", &file], &[]);
    assert!(
        err.contains("bad value for round_interval") && err.contains(&file),
        "{err}"
    );

    let err = fails(&[], &[("POSD_MAX_CONNECTIONS", "0")]);
    assert!(
        err.contains("bad value for max_connections (from POSD_MAX_CONNECTIONS)"),
        "{err}"
    );
    let err = fails(&["--listen", "everywhere"], &[]);
    assert!(
        err.contains("bad value for listen (from --listen)"),
        "{err}"
    );
    let err = fails(&["--slash-on-invalid-bpm", "maybe"], &[]);
    assert!(
        err.contains("slash_on_invalid_bpm") && err.contains("true or false"),
        "{err}"
    );
    let err = fails(&["--log-format", "xml"], &[]);
    assert!(err.contains("log_format"), "{err}");
    let err = fails(&["--config", "/nonexistent/posd.toml"], &[]);
    assert!(err.contains("/nonexistent/posd.toml"), "{err}");
    let file = write(dir.path(), "listen = [1, 2]\n");
    assert!(fails(&["--config", &file], &[]).contains("bad value for listen"));
}

#[test]
fn completions_and_man_page() {
    let out = posd(&["--completions", "bash"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--round-interval"));
    let out = posd(&["--man"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH posd 8"));
}

#[test]
fn sighup_reloads_what_it_can_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "round_interval = \"1h\"\n");
    let data = dir.path().join("data");
    let posd = Posd::start(posd_bin!(), &data, &["--config", &file]);
    let (mut v, addr, _) = posd.validator(5);
    v.send("61\n");
    v.expect("Enter a new BPM:");

    // A bad file is refused whole: the old config stays, and posd keeps serving.
    write(dir.path(), "round_interval = \"whenever\"\n");
    posd.signal(libc::SIGHUP);
    let log = posd.wait_log("reload failed; keeping the running config");
    assert!(log.contains("round_interval"), "{log}");
    v.send("status\n");
    assert!(
        v.expect("Enter a new BPM:").contains("round ends in: 3"),
        "an hour-long round"
    );

    write(dir.path(), "round_interval = \"100ms\"\nmax_bpm = 5\n");
    posd.signal(libc::SIGHUP);
    let (winner, block) = v.next_block();
    assert_eq!((winner, block["BPM"].as_u64()), (addr, Some(61)));
    let log = posd.wait_log("changed key needs a restart");
    assert!(
        log.contains("config reloaded") && log.contains("round_interval"),
        "{log}"
    );
    assert!(log.contains("max_bpm"), "{log}");
    // max_bpm was not applied: 61 is still a valid proposal (it wins again), not a slashing.
    v.send("61\n");
    let (_, block) = v.next_block();
    assert_eq!(
        (block["Index"].as_u64(), block["BPM"].as_u64()),
        (Some(2), Some(61))
    );
}

#[test]
fn out_of_range_values_are_refused_naming_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "18446744073709551615s";
    let refused = |args: &[&str], env: &[(&str, &str)], key: &str, range: &str| {
        let mut all = vec!["--print-config"];
        all.extend_from_slice(args);
        let err = fails(&all, env);
        assert!(
            err.contains(&format!("bad value for {key}")) && err.contains(range),
            "{args:?} {env:?}: {err}"
        );
    };
    refused(
        &["--round-interval", huge],
        &[],
        "round_interval (from --round-interval)",
        "from 1ms to 1day",
    );
    refused(
        &["--round-interval", "500us"],
        &[],
        "round_interval",
        "from 1ms to 1day",
    );
    refused(
        &[],
        &[("POSD_STAKE_TIMEOUT", huge)],
        "stake_timeout (from POSD_STAKE_TIMEOUT)",
        "from 100ms to 1day",
    );
    let flags = [
        (
            "--write-timeout",
            "50ms",
            "write_timeout",
            "from 100ms to 1day",
        ),
        (
            "--idle-timeout",
            "2days",
            "idle_timeout",
            "\"0s\" (off) or a duration from 1s to 1day",
        ),
        (
            "--max-stake",
            "18446744073709551615",
            "max_stake",
            "from 1 to 1000000000000000",
        ),
        (
            "--block-reward",
            "1000001",
            "block_reward",
            "from 0 to 1000000",
        ),
        (
            "--max-line-bytes",
            "71",
            "max_line_bytes",
            "from 128 to 65536",
        ),
        (
            "--max-line-bytes",
            "4294967296",
            "max_line_bytes",
            "from 128 to 65536",
        ),
        (
            "--max-connections",
            "1000001",
            "max_connections",
            "from 1 to 1000000",
        ),
        ("--max-bpm", "4294967296", "max_bpm", "from 0 to 4294967295"),
    ];
    for (flag, value, key, range) in flags {
        refused(&[flag, value], &[], key, range);
    }
    // The file is held to the same ranges; i64::MAX is a valid TOML integer.
    let file = write(dir.path(), "max_stake = 9223372036854775807\n");
    let err = fails(&["--print-config", "--config", &file], &[]);
    assert!(
        err.contains("bad value for max_stake") && err.contains("from 1 to 1000000000000000"),
        "{err}"
    );
}

#[test]
fn printed_extremes_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let highest = [
        "--round-interval=1day",
        "--stake-timeout=1day",
        "--write-timeout=1day",
        "--idle-timeout=1day",
        "--block-reward=1000000",
        "--max-stake=1000000000000000",
        "--max-bpm=4294967295",
        "--max-connections=1000000",
        "--max-line-bytes=65536",
    ];
    let lowest = [
        "--round-interval=1ms",
        "--stake-timeout=100ms",
        "--write-timeout=100ms",
        "--idle-timeout=1s",
        "--block-reward=0",
        "--max-stake=1",
        "--max-bpm=0",
        "--max-connections=1",
        "--max-line-bytes=128",
    ];
    for args in [&highest[..], &lowest[..], &["--idle-timeout=0s"][..]] {
        let mut all = vec!["--print-config"];
        all.extend_from_slice(args);
        let first = posd(&all, &[]);
        let text = String::from_utf8(first.stdout.clone()).unwrap();
        assert!(first.status.success() && !text.contains("= -"), "{text}");
        let file = write(dir.path(), &text);
        let again = posd(&["--print-config", "--config", &file], &[]);
        assert_eq!(
            String::from_utf8_lossy(&again.stdout),
            text,
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
    }
}

#[test]
fn a_reload_out_of_range_keeps_the_running_config_and_the_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "round_interval = \"100ms\"\n");
    let data = dir.path().join("data");
    let posd = Posd::start(posd_bin!(), &data, &["--config", &file]);
    let (mut v, addr, _) = posd.validator(5);
    v.send("61\n");
    assert_eq!(v.next_block().0, addr);

    write(
        dir.path(),
        "round_interval = \"18446744073709551615s\"\nstake_timeout = \"100years\"\n",
    );
    posd.signal(libc::SIGHUP);
    let log = posd.wait_log("reload failed; keeping the running config");
    assert!(
        log.contains("round_interval") && log.contains("1day"),
        "{log}"
    );
    // The round timer lives on with the old interval, and new connections work.
    v.send("62\n");
    let (winner, block) = v.next_block();
    assert_eq!((winner, block["BPM"].as_u64()), (addr, Some(62)));
    posd.validator(1);
}

#[test]
fn shipped_example_lists_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/posd.toml");
    let example = std::fs::read_to_string(path).unwrap();
    for key in posd::config::KEYS {
        assert!(example.contains(&format!("\n#{key} = ")), "{key} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let file = write(dir.path(), &uncommented);
    assert_eq!(
        print_config(&["--config", &file], &[]),
        print_config(&[], &[])
    );
}

#[test]
fn chain_rules_are_chain_data_not_node_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut posd = Posd::start(posd_bin!(), dir.path(), &["--max-bpm", "500"]);
    assert!(posd.terminate().success());
    let posd = Posd::start(
        posd_bin!(),
        dir.path(),
        &["--max-bpm", "2000", "--slash-on-invalid-bpm", "false"],
    );
    let log = posd.wait_log("chain rule set when this chain was created");
    assert!(log.contains("max_bpm") && log.contains("500"), "{log}");
    let (mut v, _, _) = posd.validator(5);
    v.send("1500\n");
    // The chain's rules: 1500 is out of range, and a malformed proposal slashes.
    let said = v.expect_closed();
    assert!(
        said.contains("slashed") && said.contains("0 to 500"),
        "{said}"
    );
}
