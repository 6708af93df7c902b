//! The operator's window over a real posd (`run()` in-process): `chain
//! follow` across restarts, `export` and `backup` while validators register.

mod common;

use common::{json_lines, ok};
use pos_testkit::{Client, Daemon, PATIENCE};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Commits one block: a new validator proposes `bpm`, then the round is forced.
fn commit(addr: SocketAddr, socket: &Path, bpm: u32) {
    let (mut c, _, _) = Client::validator(addr, 10);
    c.send(&format!("{bpm}\n"));
    c.expect(&format!("proposal {bpm} for block"));
    pos_testkit::admin::lottery_run(socket)
        .unwrap()
        .expect("a block");
}

/// `posctl chain follow` as a child, its stdout lines arriving on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(socket: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_posctl"))
            .arg("--socket")
            .arg(socket)
            .args(["--timeout", "2s", "--json", "chain", "follow"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Follower { child, lines }
    }

    /// Blocks printed up to and including `index`.
    fn until(&self, index: u64) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("block {index} never printed; got {got:?}"));
            let block: Value = serde_json::from_str(&line).expect(&line);
            let done = block["Index"] == index;
            got.push(block);
            if done {
                return got;
            }
        }
    }

    /// Stops posctl; returns what it said on stderr.
    fn stop(mut self) -> String {
        self.child.kill().unwrap();
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn follow_prints_every_block_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let hour = ["--round-interval", "1h"];
    let d = Daemon::start(dir.path(), &hour);
    let socket = d.socket.clone();
    let follower = Follower::start(&socket, &["--from", "1"]);
    commit(d.addr, &socket, 61);
    commit(d.addr, &socket, 62);
    let mut printed = follower.until(2);
    d.stop().unwrap();

    // Blocks 3 and 4 commit while posctl cannot reach posd: this posd
    // answers on another socket.
    let elsewhere = dir.path().join("elsewhere.sock");
    let mut args = hour.to_vec();
    args.extend(["--admin-socket", elsewhere.to_str().unwrap()]);
    let away = Daemon::start(dir.path(), &args);
    commit(away.addr, &elsewhere, 63);
    commit(away.addr, &elsewhere, 64);
    away.stop().unwrap();

    // Back on its socket: block 5 before posctl is back, 6 while it follows.
    let d = Daemon::start(dir.path(), &hour);
    commit(d.addr, &socket, 65);
    printed.extend(follower.until(5));
    commit(d.addr, &socket, 66);
    printed.extend(follower.until(6));
    let stderr = follower.stop();

    let indexes: Vec<u64> = printed
        .iter()
        .map(|b| b["Index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 6], "each block once, in order");
    let chain = json_lines(&ok(&socket, &["--json", "chain", "show", "--from", "1"]));
    assert_eq!(printed, chain, "exactly the blocks posd holds");
    assert!(
        stderr.contains("reconnecting, to go on at block 3"),
        "{stderr}"
    );
    assert!(stderr.contains("reconnected"), "{stderr}");
}

#[test]
fn follow_starts_after_the_tip_and_stops_at_another_chain() {
    let root = tempfile::tempdir().unwrap();
    let hour = ["--round-interval", "1h"];
    let d = Daemon::start(&root.path().join("a"), &hour);
    let socket = d.socket.clone();
    commit(d.addr, &socket, 70);
    let follower = Follower::start(&socket, &[]);
    // posctl reads the tip before it follows: block 2 at the latest is its
    // first, and it follows on from there.
    commit(d.addr, &socket, 71);
    commit(d.addr, &socket, 72);
    let printed = follower.until(3);
    assert!(
        printed[0]["Index"] == 2 || printed[0]["Index"] == 3,
        "{printed:?}"
    );
    d.stop().unwrap();

    // Another chain behind the same socket: its block 4 does not follow
    // the block 3 posctl printed.
    let mut args = hour.to_vec();
    args.extend(["--admin-socket", socket.to_str().unwrap()]);
    let other = Daemon::start(&root.path().join("b"), &args);
    for bpm in 80..84 {
        commit(other.addr, &socket, bpm);
    }
    let mut child = follower.child;
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "posctl went on following");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("block 4 does not follow the block 3 printed before"),
        "{stderr}"
    );
    assert!(stderr.contains("posd now serves another chain"), "{stderr}");
}

/// Validators registering without pause, and a proposer in every 20 ms round.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    Client::validator(addr, 1 + n % 100);
                    n += 1;
                }
                n
            }));
        }
        let proposing = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let (mut c, _, _) = Client::validator(addr, 1000);
            let mut n = 0;
            while !proposing.load(Ordering::Relaxed) {
                c.send("70\n");
                c.expect("proposal 70 for block");
                n += 1;
            }
            n
        }));
        Load { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            assert!(t.join().unwrap() > 0, "the load did something");
        }
    }
}

/// `posd --check` on `dir`.
fn check(dir: &Path) -> String {
    let argv = ["posd", "--data-dir", dir.to_str().unwrap()];
    let config = posd::config::Config::from_argv(argv).unwrap();
    posd::check(&config).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()))
}

#[test]
fn backups_and_exports_taken_under_load_are_consistent() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    // Enough validators that copying them takes a while: registrations
    // during that copy would make a snapshot that is not one instant.
    let store = pos_store::Store::open(&live, &pos_core::ChainSpec::default()).unwrap();
    for i in 0..4_000u64 {
        let cmd = pos_core::Command::Register {
            address: pos_core::Address(pos_core::Digest::of(&i.to_be_bytes())),
            stake: 5,
            max_stake: 10,
            max_validators: u64::MAX,
            at_ms: 1,
        };
        store.apply(&cmd).unwrap().unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let d = Daemon::start(
        &live,
        &["--round-interval", "20ms", "--registration-rate", "0"],
    );
    let load = Load::start(d.addr);
    let mut heights = Vec::new();
    for i in 0..3 {
        let backup = root.path().join(format!("backup{i}"));
        let said = ok(&d.socket, &["--json", "backup", backup.to_str().unwrap()]);
        let said: Value = serde_json::from_str(&said).unwrap();
        heights.push(said["height"].as_u64().unwrap());
        assert!(check(&backup).contains(" ok: "));
        let file = root.path().join(format!("export{i}.jsonl"));
        ok(&d.socket, &["export", file.to_str().unwrap()]);
        // It holds the lottery's pending secret: for its owner only.
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let into = root.path().join(format!("import{i}"));
        posd::import(&file, &into).unwrap();
        check(&into);
    }
    load.stop();
    assert!(heights.windows(2).all(|w| w[0] <= w[1]), "{heights:?}");
    assert!(heights[2] > 0, "rounds committed during the backups");

    // posd starts from a backup as it is.
    let last = root.path().join("backup2");
    let b = Daemon::start(&last, &["--round-interval", "1h"]);
    let status: Value = serde_json::from_str(&ok(&b.socket, &["--json", "status"])).unwrap();
    assert_eq!(status["height"], heights[2]);

    // A backup goes only into a new or empty directory.
    let out = common::posctl(&d.socket, &["backup", last.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not empty"), "{err}");
}
