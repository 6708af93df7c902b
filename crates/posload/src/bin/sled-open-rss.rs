//! The memory bound for a long chain: bare sled (no posd) opening a data
//! directory's database with posd's cache size, and the RSS that costs.
//!
//!   cargo run --release -p posload --bin sled-open-rss -- /tmp/big/sled

use posload::rss_kib;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: sled-open-rss <DATA_DIR>/sled");
        std::process::exit(2);
    };
    let me = std::process::id();
    let before = rss_kib(me).unwrap_or(0);
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
        rss_kib(me).unwrap_or(0),
        db.size_on_disk().unwrap_or(0)
    );
}
