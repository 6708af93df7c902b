//! A data directory that is corrupt, foreign, in use or full: posd says so
//! clearly (and never panics or truncates), or keeps serving reads.

use pos_testkit::{posd_bin, Client, Posd};
use std::path::Path;
use std::process::Command;

/// Runs posd on `dir` expecting it to refuse to start with one clear line
/// (even with `RUST_BACKTRACE=1`), before it binds its port; returns stderr.
fn refused(dir: &Path) -> String {
    let out = Command::new(posd_bin!())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "not a clean refusal: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("listening"), "bound before refusing: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("posd: error: "), "{err}");
    err
}

/// A data directory with a few blocks, posd stopped.
fn chain(dir: &Path) {
    let mut posd = Posd::start(posd_bin!(), dir, &["--round-interval", "50ms"]);
    let (mut v, _, _) = posd.validator(10);
    for bpm in 60..63 {
        v.send(&format!("{bpm}\n"));
        v.next_block();
    }
    drop(v);
    assert!(posd.terminate().success());
}

fn edit_tree(dir: &Path, tree: &str, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::open(dir.join("sled")).unwrap();
    edit(&db.open_tree(tree).unwrap());
    db.flush().unwrap();
}

#[test]
fn foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "not a chain").unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains("not a posd chain") && err.contains("thesis.tex"),
        "{err}"
    );
    assert!(dir.path().join("thesis.tex").exists());
    assert!(!dir.path().join("posd.lock").exists(), "left a file behind");
}

#[test]
fn a_bad_config_is_one_line_even_with_backtraces_on() {
    let out = Command::new(posd_bin!())
        .args(["--round-interval", "soon"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("round_interval"), "{err}");
}

#[test]
fn a_relative_data_dir_is_logged_absolute_with_what_was_found() {
    let cwd = tempfile::tempdir().unwrap();
    let abs = cwd.path().join("rel-data");
    let start = |expect: &str| {
        let mut cmd = Command::new(posd_bin!());
        cmd.current_dir(cwd.path())
            .args(["--listen", "127.0.0.1:0", "--data-dir", "rel-data"])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut log = String::new();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        while !log.contains("posd ready") {
            let n = std::io::BufRead::read_line(&mut stderr, &mut log).unwrap();
            assert!(n > 0, "posd ended: {log}");
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        let line = log
            .lines()
            .find(|l| l.contains(expect))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains(&abs.display().to_string()), "{line}");
        line.to_string()
    };
    start("created a new chain");
    let again = start("opened the chain");
    assert!(again.contains("height=0"), "{again}");
}

#[test]
fn other_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path());
    edit_tree(dir.path(), "meta", |meta| {
        meta.insert("schema_version", &99u32.to_be_bytes()).unwrap();
    });
    let err = refused(dir.path());
    assert!(
        err.contains("schema version 99, this posd reads 3"),
        "{err}"
    );
}

#[test]
fn corrupt_tip_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path());
    let tip_key = 3u64.to_be_bytes();
    let mut before = Vec::new();
    edit_tree(dir.path(), "blocks", |blocks| {
        let mut bytes = blocks.get(tip_key).unwrap().unwrap().to_vec();
        before = bytes.clone();
        // Flip a byte inside the stored hash: the tip no longer matches its contents.
        let at = bytes.len() - 5;
        bytes[at] ^= 0x55;
        blocks.insert(tip_key, bytes).unwrap();
    });
    let err = refused(dir.path());
    assert!(err.contains("tip check failed: block 3"), "{err}");
    // Nothing was truncated or "repaired".
    edit_tree(dir.path(), "blocks", |blocks| {
        assert_eq!(blocks.len(), 4);
        assert_ne!(blocks.get(tip_key).unwrap().unwrap().to_vec(), before);
    });
}

#[test]
fn undecodable_tip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path());
    edit_tree(dir.path(), "blocks", |blocks| {
        blocks.insert(3u64.to_be_bytes(), &b"\xff\xff"[..]).unwrap();
    });
    let err = refused(dir.path());
    assert!(err.contains("corrupt record in tree \"blocks\""), "{err}");
}

#[test]
fn second_posd_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Posd::start(posd_bin!(), dir.path(), &[]);
    let err = refused(dir.path());
    let in_use = format!("is in use by a running posd, pid {}", first.child.id());
    assert!(err.contains(&in_use), "{err}");
    // posd --check says the same, not that the directory failed a check.
    let check = Command::new(posd_bin!())
        .args(["--check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && err.contains(&in_use), "{err}");
    assert!(!err.contains("failed its check"), "{err}");
}

/// Needs root (to mount a small tmpfs): `.ci/run` runs it as root.
#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
fn full_disk_refuses_writes_keeps_reads_and_recovers() {
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m", "posd-test"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs (needs root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _guard = Unmount(mnt.path());
    let data = mnt.path().join("data");
    let posd = Posd::start(posd_bin!(), &data, &["--round-interval", "100ms"]);
    let (mut v, addr, _) = posd.validator(10);

    // Fill the file system until less than posd's 64 MiB reserve is free.
    let filler = mnt.path().join("filler");
    std::fs::write(&filler, vec![0u8; 50 << 20]).unwrap();

    let mut c = posd.connect();
    c.send("5\n");
    // The refused rounds' notices (every 100 ms, each with the prompt
    // again) may come before the reply.
    c.expect("error: could not register: storage failure: disk nearly full");
    let rest = c.expect("\n");
    assert!(rest.contains("nothing was written"), "{rest}");
    c.expect("Enter token balance:");
    v.send("66\n");
    let notice = v.expect("proposals stay for the next round");
    assert!(notice.contains("error: round not committed"), "{notice}");
    // Reads still work (notices of refused rounds may come in between).
    v.send("chain 1\n");
    v.expect(r#"{"Index":0,"#);

    std::fs::remove_file(&filler).unwrap();
    let (winner, block) = v.next_block();
    assert_eq!((winner, block["BPM"].as_u64()), (addr, Some(66)));
    Client::assert_serves(posd.addr);
}
