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
