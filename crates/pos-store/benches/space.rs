//! sled's own space amplification and reopen time, the bound for posd's
//! on-disk size and startup figures: the same number of 113-byte values
//! (a block's encoded size) with sequential keys, written three ways.
//!
//! Then posd's own store, committing rounds of 4 and of 10,000 candidates
//! (every validator proposing) and flushing after each, against the encoded
//! size of what it stores: blocks and round records; with what the rounds
//! wrote, the files sled made for values over its 128 KB fragment limit, and
//! how long each close took (a few, every tenth or so, far longer than the
//! rest: sled rewriting a page of whole records).
//!
//! cargo bench -p pos-store --bench space            (100,000 values)
//! POSD_SPACE_N=1000000 cargo bench -p pos-store --bench space

mod closing;

use pos_core::Command;
use pos_store::Store;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::time::Instant;

const VALUE: [u8; 113] = [7; 113];

fn run(label: &str, n: u64, write: impl Fn(&sled::Db, &sled::Tree, &sled::Tree, u64)) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let open = || {
        sled::Config::new()
            .path(dir.path())
            .cache_capacity(32 << 20)
            .open()
            .unwrap()
    };
    let db = open();
    let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
    for i in 0..n {
        write(&db, &a, &b, i);
    }
    db.flush().unwrap();
    drop((a, b, db));
    let start = Instant::now();
    let db = open();
    let reopen = start.elapsed();
    let size = db.size_on_disk().unwrap();
    println!(
        "{label:<34} {n} values: {size} bytes on disk = {:.1}x the values ({} bytes); reopen {reopen:?}",
        size as f64 / (n * VALUE.len() as u64) as f64,
        n * VALUE.len() as u64
    );
}

/// bincode as pos-store writes its values (a round record adds its layout byte).
fn encoded<T: serde::Serialize>(value: &T) -> u64 {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .unwrap()
        .len() as u64
}

/// Bytes this process has passed to `write` so far, sled's threads included.
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The sizes of the files under sled's `blobs/` in `data_dir`, in order.
fn blob_sizes(data_dir: &std::path::Path) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(data_dir.join("sled").join("blobs"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

/// `rounds` rounds of `candidates` validators each, all proposing, one
/// commit and flush per round, as posd's writer does them.
fn posd_rounds(candidates: u64, rounds: u64) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("posd");
    let store = Store::open(&path, &pos_core::ChainSpec::default()).unwrap();
    let addresses = closing::register(&store, candidates);
    let before = store.size_on_disk().unwrap();
    let (blobs_before, written_before) = (blob_sizes(&path).len(), written());
    let (mut stored, mut closes) = (0, Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let cmd = closing::close(&store, &addresses);
        closes.push(started.elapsed());
        let Command::CommitRound { block, round, .. } = &cmd else {
            unreachable!()
        };
        stored += encoded(block) + 1 + encoded(round);
    }
    let wrote = written() - written_before;
    closes.sort_unstable();
    if let Some(&max) = closes.last() {
        let (median, p90) = (closes[closes.len() / 2], closes[closes.len() * 9 / 10]);
        println!(
            "posd, {rounds} rounds of {candidates} candidates: close (apply + flush) median {median:?}, p90 {p90:?}, max {max:?}"
        );
    }
    let blobs = blob_sizes(&path);
    println!(
        "posd, {rounds} rounds of {candidates} candidates: wrote {wrote} bytes = {:.1}x the {stored} bytes of blocks and round records; {} new blob files, largest {} bytes",
        wrote as f64 / stored as f64,
        blobs.len().saturating_sub(blobs_before),
        blobs.last().copied().unwrap_or(0)
    );
    drop(store);
    let store = Store::open(&path, &pos_core::ChainSpec::default()).unwrap();
    let grown = store.size_on_disk().unwrap() - before;
    println!(
        "posd, {rounds} rounds of {candidates} candidates: {grown} bytes on disk for {stored} bytes of blocks and round records = {:.1}x",
        grown as f64 / stored as f64
    );
}

fn main() {
    let n: u64 = std::env::var("POSD_SPACE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    run("plain insert", n, |_, a, _, i| {
        a.insert(i.to_be_bytes(), &VALUE[..]).unwrap();
    });
    run("one-tree transaction per insert", n, |_, a, _, i| {
        a.transaction(|t| {
            t.insert(&i.to_be_bytes(), &VALUE[..])?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .unwrap();
    });
    run("two-tree transaction + hot key", n, |_, a, b, i| {
        (a, b)
            .transaction(|(t, h)| {
                t.insert(&i.to_be_bytes(), &VALUE[..])?;
                h.insert(b"tip", &i.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .unwrap();
    });
    posd_rounds(4, n / 10);
    posd_rounds(10_000, n / 1_000);
}
