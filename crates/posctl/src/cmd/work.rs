//! `posctl work <ADDRESS> <BPM> [--bits N]`: finds a nonce for the open round
//! of a `stake_work` chain (SPEC §12), here, on the caller's machine: posd
//! never mines for clients. The round's inputs (the tip's hash and the next
//! index) come from `status`.

use crate::client::{unexpected, Client};
use crate::output::Output;
use pos_core::weighting::WorkHasher;
use pos_core::{Address, Weighting};
use pos_proto::{Request, Response};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Hashes between two updates of the progress line.
const PROGRESS_EVERY: u64 = 1 << 18;
/// Nonces a thread takes at a time (divides PROGRESS_EVERY).
const CHUNK: u64 = 1 << 12;

/// The lowest nonce with at least `bits` leading zero bits, its zeros and
/// the hashes tried, on every core: threads take chunks of nonces in order,
/// and stop once every chunk below the best hit is done, so the answer is the
/// one a single loop from 0 gives (and the docs' Python). `progress` gets the
/// count each time it passes a multiple of PROGRESS_EVERY. None past 2^64.
fn search(
    hasher: &WorkHasher,
    bits: u32,
    progress: impl Fn(u64) + Sync,
) -> Option<(u64, u32, u64)> {
    let next_chunk = AtomicU64::new(0);
    let best = AtomicU64::new(u64::MAX);
    let hashes = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let first = next_chunk
                    .fetch_add(1, Ordering::Relaxed)
                    .checked_mul(CHUNK);
                let Some(first) = first.filter(|&f| f < best.load(Ordering::Relaxed)) else {
                    return;
                };
                let last = first.saturating_add(CHUNK);
                let hit = (first..last).find(|&n| hasher.zeros(n) >= bits);
                let tried = hit.map_or(last, |n| n + 1) - first;
                let done = hashes.fetch_add(tried, Ordering::Relaxed) + tried;
                match hit {
                    Some(n) => {
                        best.fetch_min(n, Ordering::Relaxed);
                    }
                    None if done.is_multiple_of(PROGRESS_EVERY) => progress(done),
                    None => {}
                }
            });
        }
    });
    let nonce = best.into_inner();
    let zeros = hasher.zeros(nonce);
    (zeros >= bits).then(|| (nonce, zeros, hashes.into_inner()))
}

pub async fn run(
    client: &mut Client,
    mut out: Output,
    (address, bpm, bits): (Address, u32, Option<u32>),
) -> anyhow::Result<ExitCode> {
    let s = match client.ask(&Request::Status).await? {
        Response::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    let bits = match (bits, s.weighting) {
        (Some(bits), _) => bits,
        (None, Weighting::StakeWork { work_bits, .. }) => work_bits,
        (None, other) => anyhow::bail!(
            "this chain weighs by {other}, where a nonce counts for nothing; \
             give --bits N to find one anyway"
        ),
    };
    anyhow::ensure!((1..=64).contains(&bits), "--bits must be from 1 to 64");
    let (prev, index) = (s.tip_hash, s.height + 1);
    let started = Instant::now();
    let hasher = WorkHasher::new(&prev, index, &address, bpm);
    let (nonce, zeros, hashes) = search(&hasher, bits, |hashes| {
        let rate = hashes as f64 / started.elapsed().as_secs_f64().max(1e-9);
        // One line, rewritten: how far, how fast, how long to expect.
        let _ = write!(
            std::io::stderr(),
            "\rblock {index}: {hashes} hashes, {rate:.0}/s, {bits} bits expect ~{:.0}s   ",
            2f64.powi(bits as i32) / rate
        );
    })
    .ok_or_else(|| anyhow::anyhow!("no nonce below 2^64 has {bits} leading zero bits"))?;
    let secs = started.elapsed().as_secs_f64();
    if hashes >= PROGRESS_EVERY {
        let _ = writeln!(std::io::stderr());
    }
    let rate = hashes as f64 / secs.max(1e-9);
    if out.json {
        out.json_line(&json!({
            "index": index,
            "prev_hash": prev.to_string(),
            "address": address.to_string(),
            "bpm": bpm,
            "nonce": nonce.to_string(),
            "work_bits": zeros,
            "hashes": hashes,
            "hashes_per_sec": rate.round() as u64,
        }))?;
    } else {
        out.line(format_args!(
            "nonce {nonce} gives {zeros} leading zero bits for block {index} \
             ({hashes} hashes in {secs:.2}s, {rate:.0}/s); propose with: {bpm} {nonce}"
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_core::Digest;

    /// Threads or not, the answer is the first nonce from 0, as the docs'
    /// Python loop finds it.
    #[test]
    fn search_finds_the_lowest_nonce() {
        let address = Address(Digest([1; 32]));
        for bpm in [70, 71, 72] {
            let hasher = WorkHasher::new(&Digest::of(b"posd"), 3, &address, bpm);
            let first = (0..).find(|&n| hasher.zeros(n) >= 12).unwrap();
            let (nonce, zeros, hashes) = search(&hasher, 12, |_| {}).unwrap();
            assert_eq!((nonce, zeros), (first, hasher.zeros(first)));
            assert!(hashes > nonce, "{hashes} tried for nonce {nonce}");
        }
    }
}
