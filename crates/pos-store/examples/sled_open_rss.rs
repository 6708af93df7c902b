//! The memory bound for a long chain: bare sled (no posd) opening a data
//! directory's database with posd's cache size, and the RSS that costs.
//!
//!   cargo run --release -p pos-store --example sled_open_rss -- /tmp/big/sled

use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: sled_open_rss <DATA_DIR>/sled");
        std::process::exit(2);
    };
    let before = rss_kib();
    let start = Instant::now();
    let db = match sled::Config::new()
        .path(&path)
        .cache_capacity(8 * 1024 * 1024)
        .open()
    {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "sled opened {path} in {:?}: RSS {} KiB (was {before} KiB), {} bytes on disk",
        start.elapsed(),
        rss_kib(),
        db.size_on_disk().unwrap_or(0)
    );
}
