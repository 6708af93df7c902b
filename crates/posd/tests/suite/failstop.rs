//! Fail-stop: when storage fails after a change was applied in memory, posd
//! acknowledges nothing more and exits non-zero; a restart serves what the
//! disk holds. The failure is real: the file posd must write next is made
//! immutable (`chattr +i`), so its writes fail with EPERM. That needs root
//! and an ext2/3/4-like file system, hence `#[ignore]`: `.ci/run` runs these
//! as root with `cargo test -- --ignored`.

use pos_core::Address;
use pos_store::Store;
use pos_testkit::{posd_bin, Posd, PATIENCE};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `chattr +i`/`-i` on `path`; undone on drop so a failed test leaves no trap.
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(path: &'a Path) -> Immutable<'a> {
        let ok = Command::new("chattr").arg("+i").arg(path).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "chattr +i {} failed: these tests need root on ext4",
            path.display()
        );
        Immutable(path)
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

/// Waits for posd to exit by itself; returns its exit code.
fn exit_code(posd: &mut Posd) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = posd.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "posd kept running:\n{}",
            posd.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A failing write to `file` (relative to the data dir) stops posd without
/// acknowledging the registration that hit it; the earlier one survives.
fn registration_hits_failing(file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut posd = Posd::start(posd_bin!(), dir.path(), &[]);
    let (_v, before, _) = posd.validator(10);

    let target = dir.path().join(file);
    let guard = Immutable::set(&target);
    let mut c = posd.connect();
    c.expect("Enter token balance:");
    c.send("20\n");
    let said = c.expect_closed();
    assert!(!said.contains("Validator address:"), "acknowledged: {said}");
    assert_eq!(exit_code(&mut posd), Some(1), "{}", posd.log());
    let log = posd.log();
    assert!(log.contains("storage failed"), "{log}");
    assert!(log.contains(&dir.path().display().to_string()), "{log}");
    drop(guard);

    // posd starts again from the disk, and the acknowledged validator is there.
    let mut posd = Posd::start(posd_bin!(), dir.path(), &[]);
    posd.connect().expect("Enter token balance:");
    assert!(posd.terminate().success());
    let store = Store::open(dir.path(), &pos_core::ChainSpec::default()).unwrap();
    let v = store
        .validator(&before.parse::<Address>().unwrap())
        .unwrap();
    assert_eq!(v.map(|v| v.balance), Some(10));
}

#[test]
#[ignore = "needs root and ext4 (chattr +i); .ci/run runs it"]
fn failing_acknowledgement_record_stops_posd() {
    registration_hits_failing("acked");
}

#[test]
#[ignore = "needs root and ext4 (chattr +i); .ci/run runs it"]
fn failing_sled_log_stops_posd() {
    registration_hits_failing("sled/db");
}
