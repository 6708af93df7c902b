//! The clock cannot write history: a clock set back a day, or past the year
//! 9999, under libfaketime (a real change of what posd's clock reads, made
//! through its `FAKETIME_TIMESTAMP_FILE`). Needs the Debian package
//! `faketime`, hence `#[ignore]`; `.ci/run` installs it and runs these.

use pos_testkit::{admin, posd_bin, Posd};
use std::path::Path;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn set_clock(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).unwrap();
}

#[test]
#[ignore = "needs libfaketime (apt-get install faketime); .ci/run runs it"]
fn block_times_never_go_backwards_and_no_clock_panics() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: apt-get install faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("faketime");
    set_clock(&clock, "+0");
    let data = dir.path().join("data");
    let clock_path = clock.display().to_string();
    let mut posd = Posd::start_env(
        posd_bin!(),
        &data,
        &["--round-interval", "1h"],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock_path),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let (mut v, _, _) = posd.validator(10);
    let mut round = |bpm: u32| {
        v.propose(bpm);
        admin::lottery_run(&posd.socket())
    };
    let first = round(60).unwrap().unwrap();

    set_clock(&clock, "-1d");
    let second = round(61).unwrap().unwrap();
    let third = round(62).unwrap().unwrap();
    assert_eq!(second.timestamp_ms, first.timestamp_ms + 1);
    assert_eq!(third.timestamp_ms, second.timestamp_ms + 1);
    let log = posd.wait_log("clock is behind");
    assert_eq!(log.matches("clock is behind").count(), 1, "{log}");

    set_clock(&clock, "+8000y");
    let err = round(63).unwrap_err();
    assert!(err.contains("outside the years 1970-9999"), "{err}");
    posd.wait_log("round skipped");

    // Back to now: the proposal stayed, and the chain goes on from the tip.
    set_clock(&clock, "+0");
    let fourth = admin::lottery_run(&posd.socket()).unwrap().unwrap();
    assert_eq!((fourth.index, fourth.bpm), (4, 63));
    assert!(fourth.timestamp_ms > third.timestamp_ms);
    assert!(!posd.log().contains("panicked"));
    drop(v);
    assert!(posd.terminate().success());

    let store = pos_store::Store::open(&data, &pos_core::ChainSpec::default()).unwrap();
    assert_eq!(store.check_all().unwrap().blocks, 5);
}
