//! A damaged store never comes up as a shorter or a new chain: copies of a
//! real data directory (31 blocks, 20 validators, posd stopped cleanly) are
//! damaged in many ways, and on each copy both `posd --check` and a normal
//! start either keep every acknowledged record or refuse with one clear line.

use pos_core::Address;
use pos_store::Store;
use pos_testkit::{posd_bin, Posd, PATIENCE};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// What the clean run acknowledged.
struct Acked {
    blocks: BTreeMap<u64, String>,
    validators: Vec<String>,
}

fn build(dir: &Path) -> Acked {
    let mut posd = Posd::start(posd_bin!(), dir, &["--round-interval", "1h"]);
    let mut clients: Vec<_> = (0..20).map(|i| posd.validator(10 + i)).collect();
    let validators = clients.iter().map(|(_, a, _)| a.clone()).collect();
    let mut blocks = BTreeMap::new();
    for round in 0..31 {
        let (c, _, _) = &mut clients[round % 20];
        c.propose(60 + round as u32);
        let block = pos_testkit::admin::lottery_run(&posd.socket())
            .unwrap()
            .expect("a block");
        blocks.insert(block.index, block.hash.to_hex());
    }
    drop(clients);
    assert!(posd.terminate().success());
    Acked { blocks, validators }
}

/// Every acknowledged block (same hash) and validator is in `dir`.
fn holds_everything(dir: &Path, acked: &Acked, what: &str) {
    let store =
        Store::open(dir, &pos_core::ChainSpec::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (index, hash) in &acked.blocks {
        let block = store.block(*index).unwrap();
        assert_eq!(
            block.map(|b| b.hash.to_hex()).as_ref(),
            Some(hash),
            "{what}: acknowledged block {index} lost or changed"
        );
    }
    for a in &acked.validators {
        let v = store.validator(&a.parse::<Address>().unwrap()).unwrap();
        assert!(v.is_some(), "{what}: acknowledged validator {a} lost");
    }
}

/// posd refused `dir` (exit 1, one `posd: error:` line naming a file in it
/// and the way back, and nothing else: sled's own log lines and wording stay
/// at debug), or `dir` still holds everything acknowledged.
fn refused_or_whole(outcome: Result<(), String>, dir: &Path, acked: &Acked, what: &str) -> bool {
    match outcome {
        Ok(()) => {
            holds_everything(dir, acked, what);
            false
        }
        Err(err) => {
            let errors: Vec<&str> = err.lines().filter(|l| l.contains("error: ")).collect();
            let last = err.lines().last().unwrap_or_default();
            assert_eq!(errors, [last], "{what}: not one error line, last: {err}");
            assert!(last.starts_with("posd: error: "), "{what}: {err}");
            assert!(last.contains(&dir.display().to_string()), "{what}: {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
            // The first line the user sees is posd's, in posd's words.
            assert_eq!(
                err.lines().next(),
                Some(last),
                "{what}: lines before: {err}"
            );
            assert!(!err.contains("sled::"), "{what}: {err}");
            assert!(!err.contains("backtrace"), "{what}: {err}");
            true
        }
    }
}

/// `posd --check`: `Ok` or the stderr of a refusal.
fn check(dir: &Path) -> Result<(), String> {
    let out = Command::new(posd_bin!())
        .arg("--check")
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(err),
        other => panic!("posd --check ended with {other:?}: {err}"),
    }
}

/// A child killed and reaped however the test leaves it.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A normal start: `Ok` once posd is ready (then stopped), or the stderr of a refusal.
fn start(dir: &Path) -> Result<(), String> {
    let mut child = Reaped(
        Command::new(posd_bin!())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "warn,posd=info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = String::new();
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.0.wait().unwrap();
            assert_eq!(status.code(), Some(1), "{log}");
            return Err(log);
        }
        log.push_str(&line);
        if line.contains("posd ready") {
            unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
            assert!(child.0.wait().unwrap().success(), "{log}");
            return Ok(());
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
    }
}

fn copy(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status();
    assert!(ok.unwrap().success());
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (at as usize).min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn zero_page(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0u8; 4096], at / 4096 * 4096).unwrap();
}

type Damage = Box<dyn Fn(&Path)>;

#[test]
fn damaged_copies_keep_everything_or_refuse() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    let acked = build(&clean);
    assert_eq!(acked.blocks.len(), 31);
    // Opening a store rewrites its files: measure and check on a copy.
    let db_len = std::fs::metadata(clean.join("sled/db")).unwrap().len();
    let sane = base.path().join("sane");
    copy(&clean, &sane);
    holds_everything(&sane, &acked, "the undamaged copy");

    let mut damages: Vec<(String, Damage)> = Vec::new();
    for k in 0..10 {
        let at = db_len * k / 10 + 17;
        damages.push((
            format!("flipped byte at {at} of sled/db"),
            Box::new(move |d| flip(&d.join("sled/db"), at)),
        ));
    }
    for k in 1..=6 {
        let len = db_len * k / 7;
        damages.push((
            format!("sled/db truncated to {len}"),
            Box::new(move |d| truncate(&d.join("sled/db"), len)),
        ));
    }
    for k in 0..5 {
        let at = db_len * k / 5;
        damages.push((
            format!("zeroed page at {at} of sled/db"),
            Box::new(move |d| zero_page(&d.join("sled/db"), at)),
        ));
    }
    damages.push((
        "sled/ deleted".into(),
        Box::new(|d| std::fs::remove_dir_all(d.join("sled")).unwrap()),
    ));
    damages.push((
        "flipped byte in sled/conf".into(),
        Box::new(|d| flip(&d.join("sled/conf"), 3)),
    ));
    damages.push((
        "one slot of the acknowledgement record flipped".into(),
        Box::new(|d| flip(&d.join("acked"), 20)),
    ));
    damages.push((
        "acknowledgement record truncated".into(),
        Box::new(|d| truncate(&d.join("acked"), 10)),
    ));

    let mut refusals = 0;
    for (n, (what, damage)) in damages.iter().enumerate() {
        let checked = base.path().join(format!("check-{n}"));
        copy(&clean, &checked);
        damage(&checked);
        let refused = refused_or_whole(check(&checked), &checked, &acked, what);

        let started = base.path().join(format!("start-{n}"));
        copy(&clean, &started);
        damage(&started);
        let refused_start = refused_or_whole(start(&started), &started, &acked, what);
        if refused || refused_start {
            refusals += 1;
        }
        eprintln!("{what}: check refused={refused}, start refused={refused_start}");
    }
    // The deleted store and the destroyed record at least must be refused.
    assert!(refusals >= 2, "only {refusals} refusals");
}
