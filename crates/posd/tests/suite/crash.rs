//! Acknowledged means durable: stop posd (SIGKILL, or SIGTERM under load)
//! while it registers, slashes and commits, then check that everything it
//! confirmed or announced is on disk.
//!
//! `POSD_CRASH_CYCLES=100 cargo test --release -p posd --test crash` runs the long loop.

use pos_core::verify::ChainVerifier;
use pos_core::{Address, Status};
use pos_store::Store;
use pos_testkit::{posd_bin, Posd};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What clients were told, and so must survive any crash.
#[derive(Default)]
struct Acked {
    /// Address -> stake.
    registered: HashMap<String, u64>,
    slashed: HashSet<String>,
    /// Announced blocks: index -> hash.
    blocks: BTreeMap<u64, String>,
}

fn read_line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line),
        _ => None,
    }
}

/// One validator's life: register (pipelined with a BPM), sometimes get slashed.
/// Records only what posd confirmed; any error just ends the attempt. Returns
/// the connection, so the caller can keep the proposal standing a while.
fn validator_once(addr: SocketAddr, n: u64, acked: &Mutex<Acked>) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut w = stream.try_clone().ok()?;
    let mut r = BufReader::new(stream);
    let stake = 10 + n % 90;
    w.write_all(format!("{stake}\n{}\n", n % 200).as_bytes())
        .ok()?;
    let address = loop {
        let line = read_line(&mut r)?;
        if let Some(a) = line.split("Validator address: ").nth(1) {
            break a.trim().to_string();
        }
    };
    acked
        .lock()
        .unwrap()
        .registered
        .insert(address.clone(), stake);
    if n.is_multiple_of(4) {
        w.write_all(b"not-a-bpm\n").ok()?;
        loop {
            let line = read_line(&mut r)?;
            if line.contains(&format!("validator {address} slashed")) {
                acked.lock().unwrap().slashed.insert(address);
                return Some(w);
            }
        }
    }
    Some(w)
}

/// Records every block announcement until the connection dies.
fn observe(addr: SocketAddr, acked: Arc<Mutex<Acked>>) {
    let Ok(stream) = TcpStream::connect(addr) else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut announced_winner = false;
    while let Some(line) = read_line(&mut r) {
        if line.contains("winning validator: ") {
            announced_winner = true;
        } else if announced_winner {
            announced_winner = false;
            let Ok(block) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                continue;
            };
            let (index, hash) = (
                block["Index"].as_u64().unwrap(),
                block["Hash"].as_str().unwrap(),
            );
            acked.lock().unwrap().blocks.insert(index, hash.to_string());
        }
    }
}

/// Everything acknowledged is on disk, and the whole chain verifies.
fn check(dir: &std::path::Path, acked: &Acked) -> (u64, usize) {
    let store =
        Store::open(dir, &pos_core::ChainSpec::default()).expect("data dir opens after SIGKILL");
    for a in acked.registered.keys() {
        let v = store.validator(&a.parse::<Address>().unwrap()).unwrap();
        assert!(v.is_some(), "acknowledged registration {a} lost");
    }
    for a in &acked.slashed {
        let v = store
            .validator(&a.parse::<Address>().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            v.status(),
            Status::Slashed,
            "acknowledged slashing of {a} lost"
        );
    }
    for (index, hash) in &acked.blocks {
        let b = store
            .block(*index)
            .unwrap()
            .unwrap_or_else(|| panic!("announced block {index} lost"));
        assert_eq!(&b.hash.to_hex(), hash, "announced block {index} differs");
    }
    let tip = store.tip().unwrap();
    let mut verifier = ChainVerifier::new(store.lottery_anchor());
    let mut wins: HashMap<Address, u64> = HashMap::new();
    for block in store.blocks(0, tip.index) {
        let block = block.unwrap();
        if let Some(v) = block.validator {
            *wins.entry(v).or_default() += 1;
        }
        let round = store.round(block.index).unwrap();
        verifier
            .push(block, round.as_ref())
            .expect("chain verifies");
    }
    // Balances are exactly stake + one token per block won (0 once slashed).
    let mut stored = 0usize;
    for v in store.validators() {
        let v = v.unwrap();
        stored += 1;
        let won = wins.get(&v.address).copied().unwrap_or(0);
        assert_eq!(v.blocks_won, won, "{v:?}");
        if let (Status::Active, Some(stake)) =
            (v.status(), acked.registered.get(&v.address.to_string()))
        {
            assert_eq!(v.balance, stake + won, "{v:?}");
        }
    }
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.active + counts.slashed) as usize,
        stored,
        "counters match records"
    );
    (tip.index, stored)
}

/// Validators registering (and some slashed) on 6 threads, plus an observer
/// of announcements, against `addr` until `stop` or the connection dies.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, acked: &Arc<Mutex<Acked>>, first: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![std::thread::spawn({
            let acked = Arc::clone(acked);
            move || observe(addr, acked)
        })];
        for w in 0..6 {
            let (acked, stop) = (Arc::clone(acked), Arc::clone(&stop));
            let mut k = first + w * 1_000_000;
            threads.push(std::thread::spawn(move || {
                // Each worker keeps its last 8 validators connected, so their
                // proposals stand until a round picks one.
                let mut open = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    let Some(conn) = validator_once(addr, k, &acked) else {
                        break;
                    };
                    open.push_back(conn);
                    if open.len() > 8 {
                        open.pop_front();
                    }
                    k += 1;
                }
            }));
        }
        Load { stop, threads }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("POSD_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut seed = 0x2545F4914F6CDD1Du64;
    let started = std::time::Instant::now();
    for cycle in 0..cycles {
        let mut posd = Posd::start(
            posd_bin!(),
            dir.path(),
            // A registration flood is the load here, not an attack.
            &["--round-interval", "20ms", "--registration-rate", "0"],
        );
        let load = Load::start(posd.addr, &acked, cycle * 10_000_000);
        // xorshift: a kill moment between 200 and 1000 ms, different each cycle.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(200 + seed % 800));
        posd.kill9();
        load.finish();
        let acked = acked.lock().unwrap();
        let (height, validators) = check(dir.path(), &acked);
        eprintln!(
            "cycle {cycle}: height {height}, validators {validators}, acked {} registrations, \
             {} slashings, {} blocks, lost 0, {:.1}s elapsed",
            acked.registered.len(),
            acked.slashed.len(),
            acked.blocks.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let acked = acked.lock().unwrap();
    assert!(acked.registered.len() > 10, "the load really ran");
    assert!(!acked.blocks.is_empty(), "rounds really committed");
    assert!(!acked.slashed.is_empty(), "slashings really happened");
}

#[test]
fn sigterm_under_load_exits_cleanly_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut posd = Posd::start(
        posd_bin!(),
        dir.path(),
        // A registration flood is the load here, not an attack.
        &["--round-interval", "20ms", "--registration-rate", "0"],
    );
    let idle: Vec<_> = (0..300).map(|_| posd.connect()).collect();
    let load = Load::start(posd.addr, &acked, 0);
    std::thread::sleep(Duration::from_millis(500));
    let asked = std::time::Instant::now();
    let status = posd.terminate();
    let took = asked.elapsed();
    load.finish();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for mut c in idle {
        assert!(c.expect_closed().contains("posd is shutting down"));
    }
    assert!(!posd.socket().exists(), "admin socket removed");
    let acked = acked.lock().unwrap();
    check(dir.path(), &acked);
    assert!(acked.registered.len() > 10 && !acked.blocks.is_empty());
}
