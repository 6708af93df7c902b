//! posgen: write a long valid chain straight into a data directory (posd
//! stopped), for startup, `chain show` and `chain verify` figures.
//!
//!   posgen --data-dir /tmp/big --blocks 1000000

use anyhow::Context;
use clap::Parser;
use pos_core::lottery::Candidate;
use pos_core::{Command, Digest, Secret, ValidatorKey};
use pos_store::Store;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Generate a posd chain of N blocks")]
struct Cli {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    blocks: u64,
    /// Validators proposing in every round.
    #[arg(long, default_value_t = 4)]
    candidates: u8,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let start = Instant::now();
    let store = Store::open(
        &cli.data_dir,
        &pos_core::ChainSpec {
            genesis_ms: 1_795_000_000_000,
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot open {}", cli.data_dir.display()))?;
    let addresses: Vec<_> = (1..=cli.candidates)
        .map(|k| ValidatorKey([k; 32]).address())
        .collect();
    for (i, a) in addresses.iter().enumerate() {
        // A re-run on the same directory keeps the validators it has (refused again).
        let _refused_on_rerun = store.apply(&Command::Register {
            address: *a,
            stake: 100 + i as u64 * 50,
            max_stake: u64::MAX,
            max_validators: u64::MAX,
            at_ms: 1_795_000_000_000,
        })?;
    }
    let (mut block_bytes, mut round_bytes) = (0u64, 0u64);
    let config = bincode::config::standard();
    let mut tip = store.tip()?;
    let first = tip.index + 1;
    for index in first..first + cli.blocks {
        let mut candidates = Vec::with_capacity(addresses.len());
        for a in &addresses {
            let v = store.validator(a)?.context("validator vanished")?;
            candidates.push(Candidate {
                address: *a,
                stake: v.balance,
                bpm: 60 + (index % 40) as u32,
            });
        }
        // Secrets follow from the tip: a generated chain has nothing to hide.
        let next = Secret(Digest::of(&tip.hash.0).0);
        let reveal = store.pending_secret()?;
        let cmd =
            Command::commit_round(&tip, candidates, reveal, next, tip.timestamp_ms + 30_000, 1)?;
        let Command::CommitRound { block, round, .. } = &cmd else {
            unreachable!("commit_round makes rounds")
        };
        let block = block.clone();
        block_bytes += bincode::serde::encode_to_vec(&block, config)?.len() as u64;
        round_bytes += 1 + bincode::serde::encode_to_vec(round, config)?.len() as u64;
        store
            .apply(&cmd)?
            .with_context(|| format!("block {index} refused"))?;
        tip = block;
        if index % 100_000 == 0 {
            store.flush()?;
            eprintln!("{index} blocks ({:.1}s)", start.elapsed().as_secs_f64());
        }
    }
    store.flush()?;
    println!(
        "height {}; encoded: blocks {} bytes, rounds {} bytes; on disk {} bytes; {:.1}s",
        tip.index,
        block_bytes,
        round_bytes,
        store.size_on_disk()?,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
